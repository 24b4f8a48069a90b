"""The buffer's words as a next-byte model, mixed with the GRU and the match model.

Inside a word, what comes next is most often how an earlier word of the buffer that starts the same
way went on (`ref_po` → `ref_position`, `get_p` → `get_parser`). The match model needs `MIN_LEN`
bytes of the same context before it predicts; this needs only the word's first byte. For the word
bytes before the cursor, every earlier occurrence of them at a word start votes for the byte that
followed it, the most recent with weight 1, the next with `DECAY`, then `DECAY`², … (at most
`MAX_VOTES` of them, within `WORD_SEARCH_BYTES`); the votes, normalised, are mixed in after the match
model as
    p(b) = (1 − μ) · p(b) + μ · votes(b),   μ = the weight of the word prefix's length bucket,
one set of weights where the match model predicts and one where it does not (a long match knows
better which of the buffer's words comes: `frobnicate_widgets(q` → `queue`, not the `quick` of every
other line), learned on held-out text with the match model's weights and used the same way by
`bits_per_char` and by decoding. Held-out bits per character of the default model (Python / prose /
Lua) go from 1.234 / 1.550 / 1.498 with the match model alone to 1.161 / 1.503 / 1.415
(`bench/quality.py`).
"""
from __future__ import annotations

import numpy as np

from textgen_core.memory.buffer_words import WORD_SEARCH_BYTES, is_word_byte
from textgen_core.memory.mixing import fit_bucket_weights

# Word-prefix length bucket edges, and the default weights of each bucket (how far the votes after a
# prefix of that length are trusted) without a match prediction, then with one.
PREFIX_EDGES = (1, 2, 3, 4, 6, 9)
VOTE_WEIGHTS = (0.2, 0.3, 0.35, 0.35, 0.45, 0.5) + (0.1, 0.2, 0.2, 0.2, 0.3, 0.5)
DECAY = 0.6
MAX_VOTES = 16
MAX_PREFIX = 64
_DECAYS = [DECAY ** rank for rank in range(MAX_VOTES)]
_INSIDE_A_WORD = tuple(is_word_byte(byte) or byte >= 0x80 for byte in range(256))   # after it, no word starts
_BUCKET_BY_LENGTH = [max(0, sum(length >= edge for edge in PREFIX_EDGES) - 1) for length in range(MAX_PREFIX + 1)]


def prefix_start(data: bytes | bytearray, end: int) -> int:
    """Where the word bytes that end at `end` begin; −1 when there are none, when they run longer than
    `MAX_PREFIX`, or when a byte ≥ 0x80 comes before them (no guessing inside UTF-8 words)."""
    start = end
    while start > 0 and end - start <= MAX_PREFIX and is_word_byte(data[start - 1]):
        start -= 1
    if start == end or end - start > MAX_PREFIX or (start > 0 and data[start - 1] >= 0x80):
        return -1
    return start


def word_starts(data: bytes | bytearray, prefix: bytes, limit: int, most: int | None = None) -> list[int]:
    """Where `prefix` occurs at a word start within `WORD_SEARCH_BYTES` before `limit`, followed by a byte
    before `limit`; in order; with `most`, only the last `most` of them."""
    lowest, size, found = max(0, limit - WORD_SEARCH_BYTES), len(prefix), []
    at = data.rfind(prefix, lowest, limit - 1)
    while at >= 0:
        if at == 0 or not _INSIDE_A_WORD[data[at - 1]]:
            found.append(at)
            if len(found) == most:
                break
        at = data.rfind(prefix, lowest, at + size - 1)
    found.reverse()
    return found


def voted_bytes(data: bytes | bytearray, starts: list[int], prefix_length: int) -> dict[int, float] | None:
    """The next-byte distribution that the occurrences at `starts` of a word prefix vote for, the most
    recent first with weight 1, then `DECAY`, `DECAY`², …: {byte: probability}; None when there are
    none (a dict: a handful of bytes, where numpy's calls would cost more)."""
    recent = starts[-MAX_VOTES:]
    if not recent:
        return None
    weights: dict[int, float] = {}
    for weight, start in zip(_DECAYS, reversed(recent)):
        follower = data[start + prefix_length]
        weights[follower] = weights.get(follower, 0.0) + weight
    total = sum(weights.values())
    return {byte: weight / total for byte, weight in weights.items()}


def vote_bucket(prefix_length: int, matched: bool) -> int:
    """The weight's index for a word prefix of that length (1..`MAX_PREFIX`), with or without a match
    prediction."""
    return _BUCKET_BY_LENGTH[prefix_length] + len(PREFIX_EDGES) * matched


class WordVotes:
    """The votes of one context's earlier words, memoised by prefix: a search asks for the same ones
    many times, and the occurrences of a prefix of three bytes or more are those of the prefix one
    byte shorter that go on with its last byte."""

    def __init__(self, context: bytes | bytearray) -> None:
        self.context = bytes(context)
        self._starts: dict[bytes, list[int]] = {}
        self._votes: dict[bytes, dict[int, float] | None] = {}

    def for_prefix(self, prefix: bytes) -> dict[int, float] | None:
        if prefix not in self._votes:
            self._votes[prefix] = voted_bytes(self.context, self.starts(prefix), len(prefix))
        return self._votes[prefix]

    def starts(self, prefix: bytes) -> list[int]:
        """Where `prefix` occurs at a word start, followed by a byte of the context (`word_starts`);
        for a single byte, only the last `MAX_VOTES` (all of them would cost more than they save)."""
        found = self._starts.get(prefix)
        if found is None:
            parent = self._starts.get(prefix[:-1]) if len(prefix) > 2 else None
            if parent is None:
                found = word_starts(self.context, prefix, len(self.context), MAX_VOTES if len(prefix) == 1 else None)
            else:
                k, last, end = len(prefix), prefix[-1], len(self.context) - 1
                found = [s for s in parent if s + k <= end and self.context[s + k - 1] == last]
            self._starts[prefix] = found
        return found


def target_votes(data: bytes, matched: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each end = 1..N−1: the votes' probability of data[end] given data[:end] and the weight's
    bucket (−1: no votes), given whether the match model predicts there (`matched`, (N − 1,));
    arrays of shape (N − 1,)."""
    n = len(data)
    probs = np.zeros(max(n - 1, 0))
    buckets = np.full(max(n - 1, 0), -1, np.int32)
    for end in range(1, n):
        start = prefix_start(data, end)
        if start < 0:
            continue
        voted = voted_bytes(data, word_starts(data, bytes(data[start:end]), end, MAX_VOTES), end - start)
        if voted is None:
            continue
        probs[end - 1] = voted.get(data[end], 0.0)
        buckets[end - 1] = vote_bucket(end - start, bool(matched[end - 1]))
    return probs, buckets


def mix_target_votes(target_probs: np.ndarray, voted: np.ndarray, buckets: np.ndarray,
                     weights: tuple[float, ...]) -> np.ndarray:
    """Probabilities of data[1:] (N − 1,) with the votes mixed in."""
    mu = np.where(buckets >= 0, np.array(weights)[np.maximum(buckets, 0)], 0.0)
    return (1 - mu) * target_probs + mu * voted


def fit_weights(target_probs: np.ndarray, voted: np.ndarray, buckets: np.ndarray,
                min_count: int = 20) -> tuple[float, ...]:
    """Per-bucket weights that maximise the likelihood of the text under the mixture; buckets seen
    fewer than `min_count` times keep their default."""
    return fit_bucket_weights(target_probs, voted, buckets, VOTE_WEIGHTS, 0.95, 96, min_count)
