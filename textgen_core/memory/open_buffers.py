"""The open buffers as memory: an n-gram of the whole current buffer and the other loaded buffers.

The model reads the last 4 KB before the cursor and the match model 64 KB; the names a person types
next are as often below the cursor (editing in the middle of a file), further up a long file, or in
another buffer they have open. `build_buffer_memory` counts those texts, nearest first, the way the
project's n-gram (`project`) counts the project's files, and the mixer (`match.MatchMixer`) mixes it
in after the project's table, with `BUFFER_WEIGHTS`:
    mixer.with_memories([(project.ngram, project.weights), (buffer_table, BUFFER_WEIGHTS)])
It is rebuilt (in the background) whenever the buffers change, so it is bounded by what one rebuild
may cost: `MAX_BUFFER_BYTES`.
"""
from __future__ import annotations

from typing import Sequence

from textgen_core.memory.ngram import ORDERS, NgramModel, build_ngram

# Counting costs about 0.5 s a MiB (orders 1–16, contexts seen once kept; AMD EPYC, 2 cores, one
# busy): 1 MiB keeps a rebuild near half a second (2 MiB took 1.06 s), and is the current buffer
# and a few dozen others of ordinary size.
MAX_BUFFER_BYTES = 1 << 20
# Joins the texts, and is counted as no text's: where a buffer ends (often where the cursor was when
# it was last sent) says nothing of what comes next; counted, "the qu" at a buffer's end made the
# next "the qu" typed anywhere end there.
SEPARATOR = b"\x00"
BUFFER_MIN_COUNT = 1
# Per bucket (`ngram.confidence_bucket`): no context found, then orders 1, 2, 3, 4, 6, 8, 12, 16
# (`ngram.ORDERS`), each for several bytes seen after the context, one byte seen once, one byte seen
# more often, each at a word's end and inside a word; then a context of blanks alone. Each order's six
# share the weight fitted for the order before the buckets by confidence (`bench/project.py --files 1
# --fit 4`, 20 held-out files of 5 projects: 0.982 → 0.926 bits per character there); blanks alone
# 0.24 and no context 0, as fitted by `bench/project.py --files 3 --fit 3` (30 held-out files of 14
# projects). The weights that fit found for the 48 others (0.930 → 0.916 bits per character there,
# keystrokes saved with the open buffers alone +3.7 points instead of +3.0) trusted the other buffers'
# text enough to change a small model's suggestions in a new buffer beside them: not kept before the
# tests that assume a suggestion there is the model's own are taught otherwise.
BUFFER_WEIGHTS = (0.0, *(w for w in (0.03, 0.04, 0.03, 0.07, 0.14, 0.24, 0.36, 0.65) for _ in range(6)), 0.24)


def buffer_text(texts: Sequence[bytes], max_bytes: int = MAX_BUFFER_BYTES) -> bytes:
    """The texts nearest first, joined by `SEPARATOR`, at most `max_bytes` in all: a text that
    does not fit whole gives its first bytes, and the texts after it none."""
    parts: list[bytes] = []
    left = max_bytes
    for text in texts:
        if not text:
            continue
        if parts:
            if left <= len(SEPARATOR):
                break
            parts.append(SEPARATOR)
            left -= len(SEPARATOR)
        piece = bytes(text[:left])
        parts.append(piece)
        left -= len(piece)
        if left <= 0:
            break
    return b"".join(parts)


def build_buffer_memory(texts: Sequence[bytes], max_bytes: int = MAX_BUFFER_BYTES,
                        orders: tuple[int, ...] = ORDERS) -> NgramModel | None:
    """The n-gram of the open buffers' texts, nearest first (the current buffer whole, then the
    others), capped at `max_bytes` taken from the nearest; None when there is no text."""
    data = buffer_text(texts, max_bytes)
    if not data:
        return None
    return build_ngram(data, orders=orders, min_count=BUFFER_MIN_COUNT, by_confidence=True, text_end=SEPARATOR[0])
