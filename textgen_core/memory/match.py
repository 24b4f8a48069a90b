"""The buffer as memory: a match model mixed with the GRU's next-byte probabilities.

A char-GRU forgets what it read a few hundred bytes ago, but a buffer repeats its own names and
phrases. The match model finds the most recent earlier occurrence of the current suffix (at least
`MIN_LEN` bytes, searched with `bytes.rfind`, so in C) and predicts the byte that followed it; the
longer the match, the more it is trusted. The mixture is
    p(b) = (1 − λ) · p_gru(b) + λ · [b = predicted],   λ = weight of the match-length bucket,
used the same way by `bits_per_char` and by decoding (PAQ and cmix do this, with more models).
The mixer then mixes in the votes of the buffer's earlier words for the word being typed
(`word_votes.py`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from textgen_core.memory import word_votes
from textgen_core.memory.mixing import fit_bucket_weights
from textgen_core.memory.ngram import NgramModel, default_weights

MIN_LEN = 6
MAX_LEN = 64
MATCH_SEARCH_BYTES = 1 << 16
# Match-length bucket edges and their default weights (how often a match of that length is right).
BUCKET_EDGES = (6, 8, 12, 16, 24, 32)
MATCH_WEIGHTS = (0.15, 0.3, 0.45, 0.6, 0.7, 0.8)


def match_bucket(length: int) -> int:
    bucket = 0
    for i, edge in enumerate(BUCKET_EDGES):
        if length >= edge:
            bucket = i
    return bucket


@dataclass
class MatchState:
    """Where the current match points (index of the predicted byte in the text) and its length."""

    pointer: int = -1
    length: int = 0


def find_match(data: bytes | bytearray, end: int, limit: int | None = None) -> MatchState:
    """The latest earlier occurrence of the suffix data[end-MIN_LEN:end], extended backwards.

    The occurrence and the byte it predicts lie before `limit` (default: `end`), so that decoding
    copies from the user's text, never from its own output (which would loop).
    """
    if end < MIN_LEN + 1:
        return MatchState()
    lo = max(0, end - MATCH_SEARCH_BYTES)
    suffix = bytes(data[end - MIN_LEN:end])
    start = data.rfind(suffix, lo, min(end, limit if limit is not None else end) - 1)  # a next byte exists
    if start < 0:
        return MatchState()
    length = MIN_LEN
    while length < MAX_LEN and start - (length - MIN_LEN) - 1 >= 0 and end - length - 1 >= 0 \
            and data[start - (length - MIN_LEN) - 1] == data[end - length - 1]:
        length += 1
    return MatchState(pointer=start + MIN_LEN, length=length)


def advance(data: bytes | bytearray, state: MatchState, end: int, limit: int | None = None) -> MatchState:
    """The match after data[end-1] was appended: follow the pointer if it predicted right, else search."""
    bound = min(end, limit) if limit is not None else end
    if state.pointer >= 0 and data[state.pointer] == data[end - 1] and state.pointer + 1 < bound:
        return MatchState(pointer=state.pointer + 1, length=min(state.length + 1, MAX_LEN))
    return find_match(data, end, limit)


class MatchMixer:
    """Mixes GRU probabilities with the corpus n-gram's where the model has one (`ngram`, weights per
    longest context found), then with each memory's n-gram in turn (`memories`: the project's, the
    open buffers'; the same way, each with its own weights), then with the match prediction (weights
    per match-length bucket), then with the buffer's word votes (weights per word-prefix length
    bucket)."""

    def __init__(self, weights: tuple[float, ...] = MATCH_WEIGHTS,
                 word_weights: tuple[float, ...] = word_votes.VOTE_WEIGHTS,
                 ngram: NgramModel | None = None, ngram_weights: tuple[float, ...] | None = None,
                 memories: Sequence[tuple[NgramModel, tuple[float, ...]]] = ()) -> None:
        if len(weights) != len(BUCKET_EDGES) or not all(0 <= w < 1 for w in weights):
            raise ValueError(f"match weights must be {len(BUCKET_EDGES)} numbers in [0, 1)")
        if len(word_weights) != len(word_votes.VOTE_WEIGHTS) or not all(0 <= w < 1 for w in word_weights):
            raise ValueError(f"word weights must be {len(word_votes.VOTE_WEIGHTS)} numbers in [0, 1)")
        for table, table_weights in ((ngram, ngram_weights), *memories):
            if table is not None and table_weights is not None and (
                    len(table_weights) != table.buckets or not all(0 <= w < 1 for w in table_weights)):
                raise ValueError(f"n-gram weights must be {table.buckets} numbers in [0, 1)")
        self.weights = tuple(float(w) for w in weights)
        self.word_weights = tuple(float(w) for w in word_weights)
        self.uses_votes = any(self.word_weights)
        self.ngram = ngram
        self.ngram_weights = (tuple(float(w) for w in ngram_weights) if ngram_weights is not None
                              else default_weights(ngram) if ngram is not None else ())
        self.memories = tuple((table, tuple(float(w) for w in table_weights)) for table, table_weights in memories)
        self.tables = (((ngram, self.ngram_weights),) if ngram is not None else ()) + self.memories  # in order

    def with_memories(self, memories: Sequence[tuple[NgramModel, tuple[float, ...]]]) -> "MatchMixer":
        """The same mixer with `memories` (n-grams and their weights) mixed in after the corpus
        n-gram instead of its own."""
        return MatchMixer(self.weights, self.word_weights, self.ngram, self.ngram_weights or None, memories)

    def adding(self, memories: Sequence[tuple[NgramModel, tuple[float, ...]]]) -> "MatchMixer":
        """The same mixer with `memories` mixed in after its own (itself when there are none)."""
        return self.with_memories(self.memories + tuple(memories)) if memories else self

    @property
    def has_ngram(self) -> bool:
        """Whether any n-gram (the corpus', the project's) is mixed in: then every byte's share changes."""
        return bool(self.tables)

    def prefetch(self, histories: list[bytes | bytearray]) -> None:
        """Look up every n-gram for all of a step's rows at once (`NgramModel.prefetch`)."""
        for table, _ in self.tables:
            table.prefetch(histories)

    def mix_ngram(self, log_probs: np.ndarray, data: bytes | bytearray) -> np.ndarray:
        """The GRU's log-probabilities (256,) of the byte after `data` with the n-gram's mixed in."""
        return np.log(self.mix_ngram_probs(np.exp(log_probs), data))

    def mix_ngram_probs(self, gru_probs: np.ndarray, data: bytes | bytearray) -> np.ndarray:
        """The same in probabilities: (1 − w) · p + w · p_ngram for each n-gram in turn, w that of the
        longest context found."""
        for table, table_weights in self.tables:
            probs, bucket = table.probs(data)
            weight = table_weights[bucket]
            gru_probs = (1.0 - weight) * gru_probs + weight * probs
        return gru_probs

    def word_weight(self, prefix_length: int, matched: bool) -> float:
        return self.word_weights[word_votes.vote_bucket(prefix_length, matched)]

    def weight(self, state: MatchState) -> float:
        return self.weights[match_bucket(state.length)] if state.pointer >= 0 else 0.0

    def additions(self, data: bytes | bytearray, state: MatchState, voted: dict[int, float] | None,
                  prefix_length: int) -> tuple[float, dict[int, float]]:
        """The mixture p(b) = keep · p_gru(b) + added[b] with the match prediction of `state` and the
        word votes (`word_votes.WordVotes.for_prefix`) for a word prefix of that length: (keep, added)."""
        match_weight = self.weight(state)
        word_weight = self.word_weight(prefix_length, state.pointer >= 0) if voted is not None else 0.0
        added: dict[int, float] = {}
        if match_weight > 0.0:
            added[data[state.pointer]] = match_weight * (1.0 - word_weight)
        if word_weight > 0.0:                 # else nothing to add: no log of a byte's probability times 0
            for byte, share in voted.items():
                added[byte] = added.get(byte, 0.0) + word_weight * share
        return (1.0 - match_weight) * (1.0 - word_weight), added

    def mix_log_probs(self, log_probs: np.ndarray, data: bytes | bytearray, state: MatchState,
                      voted: dict[int, float] | None, prefix_length: int) -> np.ndarray:
        """The GRU's log-probabilities (256,) → the mixture's (`additions`): the mixture scales every
        byte alike and adds to a few, so only those few need more than a shift."""
        keep, added = self.additions(data, state, voted, prefix_length)
        mixed = log_probs + math.log(keep)
        if added:
            ids = np.fromiter(added, np.intp, len(added))
            mixed[ids] = np.log(np.exp(log_probs[ids]) * keep + np.fromiter(added.values(), float, len(added)))
        return mixed

    def mixed_argmax(self, logits: np.ndarray, data: bytes | bytearray, state: MatchState,
                     voted: dict[int, float] | None, prefix_length: int) -> int:
        """argmax of the mixture (`additions`) over the GRU's `logits` (256,): only the GRU's best
        and the bytes added to can win, so the 256 need only their normaliser, not their mixture."""
        keep, added = self.additions(data, state, voted, prefix_length)
        best = int(logits.argmax())
        if not added:
            return best
        shifted = np.exp(logits.astype(np.float64) - float(logits[best]))            # (256,)
        return _best_of(shifted, keep / float(shifted.sum()), added, best)

    def mixed_argmax_of_probs(self, probs: np.ndarray, data: bytes | bytearray, state: MatchState,
                              voted: dict[int, float] | None, prefix_length: int) -> int:
        """The same over probabilities `probs` (256,) (the GRU's with the n-gram's mixed in)."""
        keep, added = self.additions(data, state, voted, prefix_length)
        best = int(probs.argmax())
        return _best_of(probs, keep, added, best) if added else best

    def mix_targets(self, data: bytes, target_probs: np.ndarray) -> np.ndarray:
        """GRU probabilities of data[1:] (N − 1,) → mixed probabilities of the same bytes."""
        target_probs = self.mix_ngram_targets(data, target_probs)
        predicted, lengths = match_predictions(data)
        voted, buckets = word_votes.target_votes(data, predicted >= 0)
        return word_votes.mix_target_votes(self._mix_match(data, target_probs, predicted, lengths), voted,
                                           buckets, self.word_weights)

    def mix_ngram_targets(self, data: bytes, target_probs: np.ndarray) -> np.ndarray:
        """GRU probabilities of data[1:] (N − 1,) with the n-grams' mixed in (the same without any)."""
        for table, table_weights in self.tables:
            ngram_probs, buckets = table.target_probs(data)
            weights = np.array(table_weights)[buckets]                                  # (N − 1,)
            target_probs = (1 - weights) * target_probs + weights * ngram_probs
        return target_probs

    def mix_match_targets(self, data: bytes, target_probs: np.ndarray) -> np.ndarray:
        """The same with the match model alone."""
        return self._mix_match(data, target_probs, *match_predictions(data))

    def _mix_match(self, data: bytes, target_probs: np.ndarray, predicted: np.ndarray,
                   lengths: np.ndarray) -> np.ndarray:
        weights = np.array(self.weights)[bucket_indices(lengths)]                   # (N − 1,)
        weights = np.where(predicted >= 0, weights, 0.0)
        hit = predicted == np.frombuffer(data, np.uint8)[1:]
        return (1 - weights) * target_probs + weights * hit


def _best_of(values: np.ndarray, scale: float, added: dict[int, float], best: int) -> int:
    """The byte with the largest scale · values[b] + added[b] among `best` and the bytes added to."""
    candidates = sorted(added.keys() | {best})            # ties: the lowest byte, as argmax
    return max(candidates, key=lambda b: scale * float(values[b]) + added.get(b, 0.0))


def match_predictions(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """For each end = 1..N−1: the byte the match model predicts for data[end] (−1: none) and the
    match length; arrays of shape (N − 1,)."""
    n = len(data)
    predicted = np.full(max(n - 1, 0), -1, np.int32)
    lengths = np.zeros(max(n - 1, 0), np.int32)
    state = MatchState()
    for end in range(1, n):
        state = advance(data, state, end) if end > 1 else state
        if state.pointer >= 0:
            predicted[end - 1] = data[state.pointer]
            lengths[end - 1] = state.length
    return predicted, lengths


def bucket_indices(lengths: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(np.array(BUCKET_EDGES), lengths, side="right") - 1, 0, None)


def fit_weights(data: bytes, target_probs: np.ndarray, min_count: int = 20) -> tuple[float, ...]:
    """Per-bucket weights that maximise the likelihood of data[1:] under the mixture.

    `target_probs` are the GRU's probabilities of data[1:] (N − 1,). The log-likelihood is concave
    in each bucket's weight, so a fine grid finds the best one; buckets seen fewer than `min_count`
    times keep their default.
    """
    predicted, lengths = match_predictions(data)
    hit = (predicted == np.frombuffer(data, np.uint8)[1:]).astype(np.float64)
    buckets = np.where(predicted >= 0, bucket_indices(lengths), -1)
    return fit_bucket_weights(target_probs, hit, buckets, MATCH_WEIGHTS, 0.98, 99, min_count)
