"""textgen's remote plugin: the Python host that runs the model for the Lua side.

When to ask, what to show and the keys live in lua/textgen/; this host loads models and runs
textgen_core's engine. Every handler returns at once (the model never blocks Neovim); answers go
back through `EditorBridge`, the one path from the engine's thread into the editor.
"""
from __future__ import annotations

import os
from typing import Any

import pynvim

from .bridge import EditorBridge


@pynvim.plugin
class TextGenHost:
    """Handlers for the functions `lua/textgen/host.lua` calls; created on the first call."""

    def __init__(self, nvim: Any) -> None:
        from .session import ModelSession          # numpy and the engine load here, not at host start

        _use_neovims_model_folder(nvim)
        self.bridge = EditorBridge(nvim)
        self.session = ModelSession()

    @pynvim.function("TextGenHostRequest", sync=False)
    def request(self, args: list[Any]) -> None:
        """Ask the engine for a suggestion; partial and final results go to `host.on_result`."""
        from .suggestion_request import SuggestionRequest
        from .session import ModelChoice

        ask = SuggestionRequest.from_lua(args[0])
        choice = ModelChoice(ask.model, ask.backend)
        switching = self.session.choice != choice
        engine = self.session.engine_for(choice)
        if engine is None:
            self.bridge.call_lua("on_model_error", choice.name, choice.backend, self.session.failures[choice], False)
            return
        if switching:
            self.bridge.call_lua("on_model_loaded", choice.name, choice.backend, self.session.model_summary(), False)

        def deliver(completion) -> None:            # on the engine's thread
            self.bridge.call_lua("on_result", ask.ticket, list(completion.texts), completion.final,
                                 completion.elapsed_ms, completion.error)

        engine.submit(ask.buffer, ask.context, ask.options, deliver, end_offset=ask.end_offset, learn=ask.learn)

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
            self.bridge.call_lua("on_model_error", choice.name, choice.backend, reason, announce)

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
            self.bridge.call_lua("on_model_error", choice.name, choice.backend, reason, True)

    @pynvim.function("TextGenHostStatus", sync=True)
    def status(self, args: list[Any]) -> dict[str, Any]:
        return self.session.status()

    @pynvim.function("TextGenHostModelNames", sync=True)
    def model_names(self, args: list[Any]) -> list[str]:
        from textgen_core.registry import list_model_names

        return list_model_names()


def _use_neovims_model_folder(nvim: Any) -> None:
    """Resolve model names in stdpath("data")/textgen/models, where :TextGenTrain saves them.

    An explicit $TEXTGEN_MODELS_DIR wins (the training job gets the same value from the Lua side).
    """
    if os.environ.get("TEXTGEN_MODELS_DIR"):
        return
    try:
        data = nvim.call("stdpath", "data")
    except Exception:           # an old or unusual Neovim: keep textgen_core's own default
        return
    os.environ["TEXTGEN_MODELS_DIR"] = os.path.join(str(data), "textgen", "models")
