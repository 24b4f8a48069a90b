"""The one way from any thread of the Python host into Neovim.

pynvim lets only its event-loop thread call the API; the engine answers on its own worker thread.
`EditorBridge.call_lua` hands the call over to that loop (`nvim.loop`, the asyncio loop pynvim
exposes to plugins) and sends it as a notification, so neither the engine nor Neovim ever waits for
the other. Not `nvim.async_call`: it formats the caller's stack for an error report at every call,
0.4 ms of the engine's thread before each suggestion's first words could leave (AMD EPYC).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

# Runs `require('textgen.host')[name](...)` in Neovim.
_CALL_HOST_MODULE = "local name = ...; return require('textgen.host')[name](select(2, ...))"


class EditorBridge:
    """Calls functions of the Lua module `textgen.host` from any thread, without waiting."""

    def __init__(self, nvim: Any) -> None:
        self._nvim = nvim

    def call_lua(self, function: str, *args: Any, until_sent_s: float = 0.0) -> None:
        """Schedule `require('textgen.host')[function](*args)`; safe from any thread. From another
        thread than the loop's, `until_sent_s` > 0 waits (at most that long) until the loop has sent
        it: the caller lets the GIL and its core go meanwhile, where otherwise it would compute on and
        the loop's thread could wait for both, an answer's first words stuck behind the rest."""
        sent = threading.Event() if until_sent_s > 0 and not self._on_loop_thread() else None
        try:
            self._nvim.loop.call_soon_threadsafe(self._send, function, args, sent)
        except Exception:       # the event loop is gone: Neovim is exiting
            log.debug("textgen: dropped %s: the event loop is closed", function)
            return
        if sent is not None:
            sent.wait(until_sent_s)

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._nvim.loop
        except RuntimeError:                # no loop runs in this thread
            return False

    def _send(self, function: str, args: tuple[Any, ...], sent: threading.Event | None = None) -> None:
        try:
            self._nvim.exec_lua(_CALL_HOST_MODULE, function, *args, async_=True)
        except Exception:       # Neovim went away meanwhile: nothing to tell
            log.debug("textgen: could not send %s", function, exc_info=True)
        finally:
            if sent is not None:
                sent.set()
