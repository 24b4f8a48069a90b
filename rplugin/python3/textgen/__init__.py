"""textgen's remote plugin: the Python host that runs the model for the Lua side.

When to ask, what to show and the keys live in lua/textgen/; this host loads models and runs
textgen_core's engine. Every handler returns at once (the model never blocks Neovim); answers go
back through `EditorBridge`, the one path from the engine's thread into the editor.
"""
from __future__ import annotations

from typing import Any

import pynvim

from .bridge import EditorBridge

# How long the engine's thread waits for each answer to be on its way to Neovim before decoding on.
SEND_WAIT_S = 0.005


@pynvim.plugin
class TextGenHost:
    """Handlers for the functions `lua/textgen/host.lua` calls; created on the first call."""

    def __init__(self, nvim: Any) -> None:
        # No call into Neovim here: pynvim builds this object inside the first handler call, with the
        # handlers unregistered meanwhile, so a call that waited would let the next notification in
        # before they exist (and it would be lost). Model names resolve in $TEXTGEN_MODELS_DIR, which
        # lua/textgen/host.lua sets when it starts this host.
        from .session import ModelSession  # numpy and the engine load here, not at host start

        self.bridge = EditorBridge(nvim)
        self.session = ModelSession()

    @pynvim.function("TextGenHostRequest", sync=False)
    def request(self, args: list[Any]) -> None:
        """Ask the engine for a suggestion; partial and final results go to `host.on_result`."""
        from .session import ModelChoice
        from .suggestion_request import SuggestionRequest

        ask = SuggestionRequest.from_lua(args[0])
        choice = ModelChoice(ask.model, ask.backend)
        switching = self.session.choice != choice
        engine = self.session.engine_for(choice)
        if engine is None:
            self.bridge.call_lua("on_model_error", choice.name, choice.backend, self.session.failures[choice], False,
                                 False)
            return
        if switching:
            self.bridge.call_lua("on_model_loaded", choice.name, choice.backend, self.session.model_summary(), False)

        def deliver(completion) -> None:            # on the engine's thread
            self.bridge.call_lua("on_result", ask.ticket, list(completion.texts), completion.final,
                                 completion.elapsed_ms, completion.error, until_sent_s=SEND_WAIT_S)

        learn = ask.learn and not self.session.memories.private(ask.buffer)     # never a secret file's text
        engine.submit(ask.buffer, ask.context, ask.options, deliver, end_offset=ask.end_offset, learn=learn,
                      guesses=ask.lookahead, kind=ask.filetype)

    @pynvim.function("TextGenHostCancel", sync=False)
    def cancel(self, args: list[Any]) -> None:
        """Drop the request of a buffer whose suggestion is no longer wanted (frees the CPU)."""
        self.session.cancel(int(args[0]))

    @pynvim.function("TextGenHostLoad", sync=False)
    def load(self, args: list[Any]) -> None:
        """Load a model now: ahead of the first request, or to switch (:TextGenModel, `announce`)."""
        from .session import ModelChoice

        choice = ModelChoice(str(args[0]), str(args[1]))
        announce = bool(args[2]) if len(args) > 2 else True
        if announce:
            self.session.failures.pop(choice, None)
        elif self.session.choice == choice or choice in self.session.failures:
            return
        reason = self.session.load(choice)
        if reason is None:
            self.bridge.call_lua("on_model_loaded", choice.name, choice.backend, self.session.model_summary(),
                                 announce)
        else:
            self.bridge.call_lua("on_model_error", choice.name, choice.backend, reason, announce,
                                 self.session.serves(choice))

    @pynvim.function("TextGenHostSwap", sync=False)
    def swap(self, args: list[Any]) -> None:
        """Serve a model :TextGenTrain just wrote, reloading it even if its folder is the one in use."""
        from .session import ModelChoice

        choice = ModelChoice(str(args[0]), str(args[1]))
        self.session.failures.pop(choice, None)
        reason = self.session.load(choice)
        if reason is None:
            self.bridge.call_lua("on_model_loaded", choice.name, choice.backend, self.session.model_summary(), False)
        else:
            self.bridge.call_lua("on_model_error", choice.name, choice.backend, reason, True,
                                 self.session.serves(choice))

    @pynvim.function("TextGenHostAsk", sync=False)
    def ask(self, args: list[Any]) -> None:
        """Answer a question Neovim waits on with a deadline (`host.lua`'s `ask`): never a request,
        which would hold Neovim for as long as the host is busy."""
        question_id, question = int(args[0]), str(args[1])
        if question == "status":
            answer: Any = self.session.status()
        elif question == "model_names":
            from textgen_core.model.registry import list_model_names

            answer = list_model_names()
        elif question == "save_refusal":
            from textgen_core.model.files import ModelFileError, check_save_target

            try:
                check_save_target(str(args[2]))
                answer = ""
            except ModelFileError as exc:
                answer = str(exc)
            except OSError as exc:                   # a folder that cannot be read: the job would fail on it
                answer = f"cannot read {args[2]}: {exc.strerror or exc}"
        elif question == "project":
            action = str(args[2]) if len(args) > 2 else ""
            memories = self.session.memories
            answer = {"message": memories.rebuild() if action == "rebuild" else memories.clear() if action == "clear"
                      else f"unknown project action {action!r}: rebuild or clear"}
        else:
            answer = None                    # a newer plugin's question: no answer rather than an error in Neovim
        self.bridge.call_lua("on_answer", question_id, answer)

    @pynvim.function("TextGenHostBuffer", sync=False)
    def buffer(self, args: list[Any]) -> None:
        """What a buffer holds (`lua/textgen/memory.lua`): its text for the open-buffers memory, its
        file for the project memory."""
        from textgen_core.serve.memories import ProjectOptions

        info = args[0] if args and isinstance(args[0], dict) else {}
        path, text = info.get("path"), info.get("text")
        self.session.memories.buffer_event(int(info.get("buf", 0)), str(info.get("event", "")),
                                           path if isinstance(path, str) and path else None,
                                           text if isinstance(text, (str, bytes)) else None,
                                           ProjectOptions.from_lua(info.get("project")))

