"""Near copies among a corpus's files: the same text with a few lines changed (a vendored copy of a
file, one version beside another, a template filled in twice), which would be learned twice and
would let a held-out file be one the model saw.

Two files are near copies where the Jaccard similarity of their sets of `SHINGLE_WORDS`-word runs
is at least `MIN_SIMILARITY`, estimated by MinHash (`PERMUTATIONS` hash functions; the share of
functions whose minimum agrees estimates it) and found without comparing every pair by locality-
sensitive hashing: files that agree on all rows of one of `BANDS` bands are compared. With 16 bands
of 4 rows, a pair at similarity 0.8 is compared with probability 1 − (1 − 0.8⁴)¹⁶ > 0.999, one at
0.3 with probability 0.12 (and then found apart).
"""
from __future__ import annotations

import zlib

import numpy as np

SHINGLE_WORDS = 5
PERMUTATIONS = 64
BANDS = 16
MIN_SIMILARITY = 0.8
_ROWS = PERMUTATIONS // BANDS
_RANDOM = np.random.default_rng(20261206)
_XOR = _RANDOM.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64)
_ODD = _RANDOM.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def signature(data: bytes) -> np.ndarray | None:
    """The MinHash signature (PERMUTATIONS,) uint64 of `data`'s word runs; None where it has fewer
    words than one run."""
    words = np.array([zlib.crc32(word) for word in data.split()], np.uint64)              # (W,)
    if len(words) < SHINGLE_WORDS:
        return None
    shingles = np.zeros(len(words) - SHINGLE_WORDS + 1, np.uint64)                          # (S,)
    with np.errstate(over="ignore"):
        for k in range(SHINGLE_WORDS):
            shingles = (shingles * _MIX) ^ words[k:len(words) - SHINGLE_WORDS + 1 + k]
        shingles = np.unique(shingles)
        hashed = (shingles[None, :] ^ _XOR[:, None]) * _ODD[:, None]                        # (P, S)
    return hashed.min(axis=1)


class NearCopies:
    """The files seen so far; `seen(data)` says whether `data` nearly copies one of them, and
    remembers it where it does not."""

    def __init__(self) -> None:
        self._signatures: list[np.ndarray] = []
        self._buckets: dict[tuple[int, bytes], list[int]] = {}

    def seen(self, data: bytes) -> bool:
        mine = signature(data)
        if mine is None:
            return False
        bands = [(band, mine[band * _ROWS:(band + 1) * _ROWS].tobytes()) for band in range(BANDS)]
        compared: set[int] = set()
        for key in bands:
            for other in self._buckets.get(key, ()):
                if other not in compared:
                    compared.add(other)
                    if float(np.mean(self._signatures[other] == mine)) >= MIN_SIMILARITY:
                        return True
        index = len(self._signatures)
        self._signatures.append(mine)
        for key in bands:
            self._buckets.setdefault(key, []).append(index)
        return False
