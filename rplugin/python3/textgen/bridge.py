"""The one way from any thread of the Python host into Neovim.

pynvim lets only its event-loop thread call the API; the engine answers on its own worker thread.
`EditorBridge.call_lua` hands the call over with `nvim.async_call` and sends it as a notification,
so neither the engine nor Neovim ever waits for the other.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# Runs `require('textgen.host')[name](...)` in Neovim.
_CALL_HOST_MODULE = "local name = ...; return require('textgen.host')[name](select(2, ...))"


class EditorBridge:
    """Calls functions of the Lua module `textgen.host` from any thread, without waiting."""

    def __init__(self, nvim: Any) -> None:
        self._nvim = nvim

    def call_lua(self, function: str, *args: Any) -> None:
        """Schedule `require('textgen.host')[function](*args)`; safe from any thread."""
        try:
            self._nvim.async_call(self._send, function, args)
        except Exception:       # the event loop is gone: Neovim is exiting
            log.debug("textgen: dropped %s: the event loop is closed", function)

    def _send(self, function: str, args: tuple[Any, ...]) -> None:
        self._nvim.exec_lua(_CALL_HOST_MODULE, function, *args, async_=True)
