"""What Neovim asks for, as the Lua side sends it: one dictionary per suggestion request."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from textgen_core.decode import MAX_CHARS, DecodeOptions
from textgen_core.model.text_kinds import MAX_NAME_CHARS

# The context is a tail of the buffer; the engine windows it further.
MAX_CONTEXT_CHARS = 4096
MAX_CONTEXT_BYTES = 4096     # what lua/textgen/context.lua sends at most (M.MAX_CONTEXT_BYTES)
MAX_ALTERNATIVES = 10
MAX_LOOKAHEAD = 10           # as lua/textgen/config.lua allows
MAX_TEMPERATURE = 5.0        # as lua/textgen/config.lua allows


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any, default: float, low: float, high: float) -> float:
    """`value` clamped to [low, high]; `default` for what is not a finite number (nan, inf, a string)."""
    return min(high, max(low, value)) if _is_number(value) else default


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
    lookahead: int = 0
    filetype: str = ""      # the buffer's: the model mixes by the weights fitted on its kind of text

    @classmethod
    def from_lua(cls, payload: dict[str, Any]) -> "SuggestionRequest":
        context = str(payload.get("context") or "")[-MAX_CONTEXT_CHARS:]
        seed = payload.get("seed")
        options = DecodeOptions(
            max_chars=int(_number(payload.get("max_chars"), 80, 0, MAX_CHARS)),
            stop_at_newline=not payload.get("multiline", False),
            temperature=float(_number(payload.get("temperature"), 0.0, 0.0, MAX_TEMPERATURE)),
            seed=int(seed) if _is_number(seed) else None,
            n=int(_number(payload.get("n"), 1, 1, MAX_ALTERNATIVES)),
        )
        return cls(ticket=int(payload["ticket"]), buffer=int(payload["buffer"]), context=context,
                   end_offset=int(payload.get("end_offset") or 0), options=options,
                   model=str(payload.get("model") or "default"), backend=str(payload.get("backend") or "numpy"),
                   learn=payload.get("learn") is True,
                   lookahead=int(_number(payload.get("lookahead"), 0, 0, MAX_LOOKAHEAD)),
                   filetype=str(payload.get("filetype") or "")[:MAX_NAME_CHARS])
