"""Suggesting ahead: while the user reads a suggestion, the engine suggests for the keys they are
likeliest to type instead of its first character, so that such a key is answered at once.

A key that goes on with the suggestion is typed through (the plugin asks for nothing); a key that
does not needs a new suggestion, and that wait is what a person notices. On held-out Python, prose
and Lua, the key typed instead of the model's likeliest was one of its next three likeliest 51, 67
and 52 % of the time (and the idle time between keys at 10 a second is ten times what three
suggestions take). A guess is the exact request the editor would send after the key (its context
grown by the key, cut as the editor cuts it), decoded as a request would be, so a key answered from
a guess gets what it would have got. A guess is only the first words (`decode_leads`): they decide
when a suggestion shows, and cost a third of the whole; how many keys is g:textgen.lookahead.
"""
from __future__ import annotations

import numpy as np

from textgen_core.decode import RowMemory, mixed_log_probs
from textgen_core.memory.match import MatchMixer

# Only keys that add one byte to the text: printable ASCII (a line break indents, a multibyte
# character is several keys' worth of bytes).
_TYPED = np.zeros(256, bool)
_TYPED[32:127] = True


def likely_keys(logits: np.ndarray, mixer: MatchMixer | None, context: bytes, shown: str, count: int) -> list[int]:
    """The `count` likeliest next bytes after `context` that a key adds as typed, other than the
    first of the suggestion `shown` (typed, that one is typed through)."""
    memory = RowMemory(context) if mixer is not None else None
    log_probs = mixed_log_probs(logits, mixer, memory).copy()               # (256,)
    log_probs[~_TYPED] = -np.inf
    first = shown.encode()[:1]
    if first:
        log_probs[first[0]] = -np.inf
    best = np.argsort(-log_probs)[:count]
    return [int(byte) for byte in best if np.isfinite(log_probs[byte])]


def next_context(context: bytes, byte: int, limit: int | None) -> bytes:
    """The context the editor sends after the key that types `byte`: `context` and the byte, its
    last `limit` bytes from a character's start where it is longer (lua/textgen/context.lua)."""
    grown = context + bytes((byte,))
    if limit is None or len(grown) <= limit:
        return grown
    tail = grown[-limit:]
    start = 0
    while start < min(4, len(tail)) and 0x80 <= tail[start] < 0xC0:       # a character's continuation
        start += 1
    return tail[start:]
