"""The buffer's own words: for the word the cursor is in (what Vim's CTRL-N offers), and for the
word about to be typed (what followed the last word the last time).

A char-GRU completes a half-typed name with the name it finds likely in general; the buffer knows the
names this text uses. When the cursor follows at least `MIN_PREFIX` word characters and an earlier word
of the buffer (within `WORD_SEARCH_BYTES`) extends them, the most recent such word leads the greedy
suggestion; the GRU continues after it. On held-out files this saves 2–3 points more keystrokes on
code and about 1 on prose (`bench/quality.py`: Python 35.3 → 37.9 %, Lua 33.2 → 35.5 %, prose 31.1 →
32.0 %), for 5–11 µs per request (10–20 µs since it looks for two different words, 25 µs at most).
Where the two most recent such words differ (`indent_width`, `indent_cur`), the part they share leads
alone (`ent_`), as a shell completes a name: 50.7 / 37.4 / 42.2 → 50.9 / 37.9 / 42.4 % (Python /
prose / Lua); the three most recent save the same on Lua.

At a word start (the cursor after a word and a few separator bytes, such as `self.` or `the `), the
word that followed the same word and separator most recently in the buffer leads instead: a buffer
repeats its own phrases (`self.config`, `vim.api.nvim_`) long after a GRU's memory of them has faded,
and the match model needs a longer suffix before it predicts. On the same held-out text this adds
0.2 points on Python, 1.3 on prose and 0.4 on Lua (38.1 / 33.3 / 35.9 %), for 2–4 µs per request.
"""
from __future__ import annotations

import itertools

MIN_PREFIX = 2
WORD_SEARCH_BYTES = 8192
MAX_WORD = 64
MAX_SEPARATOR = 3
# A buffer where one word fills 8 KB (`self` in a class) would have the search for a second, different
# word visit every occurrence: 730 µs for 600 of them; 24 bound it to about 25 µs.
MAX_OCCURRENCES = 24


def is_word_byte(byte: int) -> bool:
    """ASCII letters, digits and `_` (a byte ≥ 0x80 ends the search: no guessing inside UTF-8)."""
    return byte == 95 or 48 <= byte <= 57 or 65 <= byte <= 90 or 97 <= byte <= 122


def word_completions(context: bytes | bytearray, most: int = 2) -> list[bytes]:
    """The rests of the `most` most recent different earlier words that extend the word at the end of
    `context` (among its last `MAX_OCCURRENCES` earlier occurrences at a word start), the most recent
    first; [] when the cursor is not after `MIN_PREFIX` word bytes, no earlier word extends them, or
    the most recent earlier occurrence is the typed word itself, whole (`return`, though `returns`
    came before it: the word is likely done; held-out keystrokes saved the same on Python and Lua,
    +0.3 points on prose)."""
    end = len(context)
    start = _word_start(context, end)
    if end - start < MIN_PREFIX or not _is_word_start(context, start):
        return []
    found: list[bytes] = []
    for seen, after in enumerate(itertools.islice(_earlier_word_starts(context, bytes(context[start:end]), start),
                                                  MAX_OCCURRENCES)):
        if seen == 0 and after < start and not is_word_byte(context[after]) and context[after] < 0x80:
            return []
        if after < start and is_word_byte(context[after]):
            rest = bytes(context[after:_word_end(context, after, start)])
            if rest not in found:
                found.append(rest)
                if len(found) == most:
                    break
    return found


def next_word(context: bytes | bytearray) -> bytes:
    """The word (with any punctuation before it, no line break) that followed the last word and its
    separator of `context` the last time they occurred, within `WORD_SEARCH_BYTES`; b"" when the cursor is
    not at a word start after a word or they did not occur before."""
    end = len(context)
    sep_start = end
    while sep_start > 0 and end - sep_start <= MAX_SEPARATOR and not is_word_byte(context[sep_start - 1]) \
            and context[sep_start - 1] < 0x80 and context[sep_start - 1] != 10:
        sep_start -= 1
    if sep_start == end or end - sep_start > MAX_SEPARATOR or sep_start == 0 \
            or not is_word_byte(context[sep_start - 1]):
        return b""
    start = _word_start(context, sep_start)
    if not _is_word_start(context, start):
        return b""
    for after in _earlier_word_starts(context, bytes(context[start:end]), start):
        word_start = after
        while word_start < start and word_start - after < MAX_SEPARATOR and not is_word_byte(context[word_start]) \
                and context[word_start] not in (10, 13) and context[word_start] < 0x80:
            word_start += 1
        stop = _word_end(context, word_start, start)
        if MIN_PREFIX <= stop - word_start <= MAX_WORD and not is_word_byte(context[stop]):
            return bytes(context[after:stop])
    return b""


def _word_start(context: bytes | bytearray, end: int) -> int:
    """Where the run of word bytes that ends at `end` begins (looking back at most `MAX_WORD` bytes)."""
    start = end
    while start > 0 and end - start < MAX_WORD and is_word_byte(context[start - 1]):
        start -= 1
    return start


def _is_word_start(context: bytes | bytearray, start: int) -> bool:
    """Whether a word can start at `start`: no word byte before it, nor a UTF-8 letter's last byte."""
    return start == 0 or not (is_word_byte(context[start - 1]) or context[start - 1] >= 0x80)


def _word_end(context: bytes | bytearray, start: int, limit: int) -> int:
    """Where the run of word bytes from `start` ends, before `limit`."""
    stop = start
    while stop < limit and is_word_byte(context[stop]):
        stop += 1
    return stop


def _earlier_word_starts(context: bytes | bytearray, phrase: bytes, start: int):
    """For each earlier occurrence of `phrase` at a word start within `WORD_SEARCH_BYTES` before `start`,
    most recent first: where the text after it begins."""
    lowest = max(0, start - WORD_SEARCH_BYTES)
    found = context.rfind(phrase, lowest, start)
    while found >= 0:
        if found == 0 or not is_word_byte(context[found - 1]):
            yield found + len(phrase)
        found = context.rfind(phrase, lowest, found + len(phrase) - 1)
