"""What Neovim asks for, as the Lua side sends it: one dictionary per suggestion request."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textgen_core.decoding import DecodeOptions

# The context is a tail of the buffer; the engine windows it further.
MAX_CONTEXT_CHARS = 4096
MAX_ALTERNATIVES = 10


@dataclass(frozen=True)
class SuggestionRequest:
    """One request from `lua/textgen/suggestion.lua`; `ticket` names it in the answer."""

    ticket: int
    buffer: int
    context: str
    end_offset: int
    options: DecodeOptions
    model: str
    backend: str
    learn: bool = False

    @classmethod
    def from_lua(cls, payload: dict[str, Any]) -> "SuggestionRequest":
        context = str(payload.get("context") or "")[-MAX_CONTEXT_CHARS:]
        seed = payload.get("seed")
        temperature = float(payload.get("temperature") or 0.0)
        options = DecodeOptions(
            max_chars=max(0, int(payload.get("max_chars", 80))),
            stop_at_newline=not payload.get("multiline", False),
            temperature=max(0.0, temperature),
            seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
            n=min(MAX_ALTERNATIVES, max(1, int(payload.get("n", 1)))),
        )
        return cls(ticket=int(payload["ticket"]), buffer=int(payload["buffer"]), context=context,
                   end_offset=int(payload.get("end_offset") or 0), options=options,
                   model=str(payload.get("model") or "default"), backend=str(payload.get("backend") or "numpy"),
                   learn=payload.get("learn") is True)
