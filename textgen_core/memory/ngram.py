"""The corpus as memory: what the training text said after the same last k bytes, k up to 16.

A GRU of 724 k parameters cannot hold a 19 MB corpus' long names and idioms (`nvim_buf_get_lines`,
`---@param`, `os.path.join(`); a table of counts can. For every order k in `ORDERS` the table keeps
the contexts (the k bytes before a position, hashed to 32 bits) seen at least `min_count` times and
how often each byte followed them. A context's prediction is Witten–Bell interpolated down to the
byte frequencies:
    p_k(b) = (n(ctx_k, b) + d(ctx_k) · p_{k−1}(b)) / (n(ctx_k) + d(ctx_k)),
n the counts, d the number of distinct bytes seen after the context, from order 1 up to the longest
context the table holds. The mixer (`match.MatchMixer`) mixes it with the GRU,
    p(b) = (1 − w) · p_gru(b) + w · p_ngram(b),
w per the longest order found (`bucket`), fitted on held-out text (PAQ and cmix mix n-grams so). A
memory's table (the project's, the open buffers') also tells its weight how sure its longest context
is (`by_confidence`: one byte or several seen after it, once or more often, inside a word or at its
end): a project's long contexts are mostly its names, trusted far more than the short ones, but
sixteen spaces are a long context too, and say nothing of how deep the next line is indented.
Held-out bits per character of the default model, Python / prose / Lua: 1.161 / 1.494 / 1.373 →
1.101 / 1.443 / 1.295 (models/default/MODEL_CARD.md).

The table is data: the folder `ngram/` beside `weights.npz`, one .npy file of plain numbers per
array, mapped into memory with `allow_pickle=False`, types and lengths checked on loading. A loaded
table's lookups (the editor's, a few hundred a suggestion) read its arrays a block at a time into a
bounded cache (`table_blocks`), so that it takes little of the editor's memory whatever its size;
scoring a whole text (`target_probs`) reads the mapped arrays.
"""
from __future__ import annotations

import mmap
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from textgen_core.lru import LruCache
from textgen_core.memory import table_blocks
from textgen_core.memory.buffer_words import is_word_byte
from textgen_core.memory.mixing import fit_bucket_weights
from textgen_core.memory.table_blocks import KEYS_PER_BLOCK, BlockReader, TableBlocks, block_index, first_keys, fits
from textgen_core.model.safe_read import RefusedFile, open_regular, read_npy_header

# Orders 5, 10 and 24 as well: held-out Lua bpc 1.282 instead of 1.291, with a table 60 % larger.
ORDERS = (1, 2, 3, 4, 6, 8, 12, 16)
MIN_COUNT = 2
NGRAM_DIR = "ngram"
DEFAULT_WEIGHT = 0.25
MAX_COUNT = np.iinfo(np.uint16).max
# Contexts whose prediction `probs` keeps (2 KB each): a suggestion asks for about a hundred.
# Contexts of each order whose lookup `_compute` keeps (a few hundred bytes each); emptied when full.
# Both are per table, and a host holds three or four (corpus, project, open buffers): 4096 and 16384
# took the host 30 MB more after 300 keys for no speed measured (two engines in one process, keys
# taking turns, keras as the project: first callback −0.01 ms, 95 % −0.06 … +0.05).
CACHED_CONTEXTS = 1024
CACHED_ORDER_CONTEXTS = 4096
# With `by_confidence`, each order's bucket is split in three: more than one byte seen after the
# context, one byte seen once, one byte seen twice or more; each of those in two: whether the context
# ends inside a word (its last byte a letter, digit or `_`: a name goes on as the project wrote it,
# where after a word anything may come); and a longest context of blanks alone (spaces, tabs: a
# line's indentation) has a bucket of its own, the last. Fitted on the 14 projects of
# `bench/project.py`, order 16's median weights are 0.70 / 0.58 / 0.88 at a word's end and 0.82 /
# 0.83 / 0.97 inside a word (`project.DEFAULT_PROJECT_WEIGHTS`).
CONFIDENCE_LEVELS = 3 * 2
BLANKS = b" \t"
_WORD_BYTE_MASK = np.array([is_word_byte(byte) for byte in range(256)])          # (256,) bool
_UNSEEN = object()
MAX_READ_ARRAY_BYTES = 4096          # orders, unigram and min_count, which are read rather than mapped
_MULTIPLIER = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


class NgramFileError(ValueError):
    """An n-gram table that cannot be used; the message names the file and what is wrong."""


def context_keys(data: np.ndarray, orders: tuple[int, ...]) -> Iterator[tuple[int, np.ndarray]]:
    """Per order k (ascending), the key of the k bytes before every position of `data` (N,) uint8:
    the top 32 bits of h_k = (h_{k−1} xor (data[i − k] + 1)) · M mod 2^64, the byte k back mixed in
    last; valid from i = k on. 32 bits: contexts whose keys collide (a few hundred in two million) share
    their counts, and a context that is not in the table is taken for one that is about once in
    2,000 lookups; 64-bit keys would make the table half as large again."""
    shifted = data.astype(np.uint64) + np.uint64(1)                                   # (N,)
    h = np.zeros(len(data), np.uint64)
    with np.errstate(over="ignore"):
        for k in range(1, max(orders) + 1):
            back = np.zeros(len(data), np.uint64)
            back[k:] = shifted[:-k] if k < len(data) else back[k:]
            h = (h ^ back) * np.uint64(_MULTIPLIER)
            if k in orders:
                yield k, (h >> np.uint64(32)).astype(np.uint32)


@dataclass(frozen=True)
class OrderTable:
    """One order's contexts: sorted hashes, and the bytes that followed each with their counts."""

    order: int
    keys: np.ndarray          # (C,) uint32, sorted, distinct
    starts: np.ndarray        # (C + 1,) uint32: context i's bytes are next_bytes[starts[i]:starts[i + 1]]
    next_bytes: np.ndarray    # (P,) uint8, ascending within a context
    counts: np.ndarray        # (P,) uint16
    # a table loaded from files: lookups read its arrays a block at a time (`table_blocks`), the
    # arrays above (mapped) serve whole texts at once (`target_probs`)
    blocks: TableBlocks | None = field(default=None, compare=False, repr=False)

    def lookup(self, key: int) -> tuple[int, int, bytes, bytes] | None:
        """One key's context: [lo, hi) of its bytes, the bytes and their counts (uint16) as raw
        bytes; None where the table does not hold it."""
        if self.blocks is not None:
            return self.blocks.lookup(key)
        i = int(self.keys.searchsorted(np.uint32(key)))      # a Python int would cast the whole array
        if i >= len(self.keys) or self.keys[i] != key:
            return None
        lo, hi = int(self.starts[i]), int(self.starts[i + 1])
        return lo, hi, self.next_bytes[lo:hi].tobytes(), self.counts[lo:hi].astype(np.uint16).tobytes()

    def find(self, hashes: np.ndarray) -> np.ndarray:
        """Index of each hash's context, or −1 where the table does not hold it: (N,) int64."""
        if len(self.keys) == 0:
            return np.full(len(hashes), -1, np.int64)
        i = np.minimum(np.searchsorted(self.keys, hashes), len(self.keys) - 1)
        return np.where(self.keys[i] == hashes, i, -1)


class NgramModel:
    """Next-byte probabilities from the counts of a corpus; immutable, safe to share between threads."""

    def __init__(self, tables: list[OrderTable], unigram: np.ndarray, min_count: int = MIN_COUNT,
                 folder: Path | None = None, by_confidence: bool = False) -> None:
        self.folder = folder                       # where it was loaded from: saving it again links the files
        self.tables = tables
        self.orders = tuple(t.order for t in tables)
        self.by_confidence = by_confidence         # buckets per order and confidence (`confidence_bucket`)
        self.unigram = unigram                     # (256,) float64, sums to 1, none zero
        self.min_count = min_count
        self._checked = False                      # whether `_check_order` passed
        self._cache: LruCache[bytes, tuple[np.ndarray, int]] = LruCache(CACHED_CONTEXTS)
        # each order's contexts looked up lately, found or not: a short context is shared by most
        # histories (that of "e " by every one ending so), so most lookups are these
        self._contexts: dict[int, tuple[int, int, bytes, bytes] | None] = {}
        self._compiled: object = _UNSEEN                         # `compiled_tables`, once asked for

    def _check_order(self) -> None:
        """Refuse, once, tables whose contexts are not sorted and distinct or whose bytes are not
        laid out one run per context (scoring a whole text relies on both)."""
        if not self._checked:
            for t in self.tables:
                if np.any(t.keys[1:] <= t.keys[:-1]) or np.any(t.starts[1:] <= t.starts[:-1]):
                    raise NgramFileError(f"order {t.order}'s contexts are not sorted and distinct, "
                                         "or one has no bytes: the table is damaged; build it again")
            self._checked = True

    @property
    def contexts(self) -> int:
        return sum(len(t.keys) for t in self.tables)

    @property
    def buckets(self) -> int:
        """How many mixing weights the table takes: no context found, then each order (each in
        `CONFIDENCE_LEVELS`, and one for blanks, with `by_confidence`)."""
        return 1 + len(self.orders) * CONFIDENCE_LEVELS + 1 if self.by_confidence else 1 + len(self.orders)

    def with_confidence(self) -> "NgramModel":
        """The same table (its arrays shared), bucketed by order and confidence."""
        return NgramModel(self.tables, self.unigram, self.min_count, self.folder, by_confidence=True)

    def probs(self, history: bytes | bytearray) -> tuple[np.ndarray, int]:
        """p_ngram of the byte after `history` (256,), read only, and the bucket: 1 + the index in
        `orders` of the longest context found, 0 for none (`confidence_bucket` with `by_confidence`).
        Cached by the last bytes that decide it:
        the next keystroke's search walks mostly the same contexts again."""
        key = self._key(history)
        found = self._cache.get(key)
        if found is None:
            found = self._compute([key])[0]
            self._cache.put(key, found)
        return found

    def _key(self, history: bytes | bytearray) -> bytes:
        """The bytes of `history` that decide its prediction: the longest order's."""
        return bytes(history[-self.orders[-1]:])

    def prefetch(self, histories: list[bytes | bytearray]) -> None:
        """Compute the `probs` of several histories not cached yet at once (the rows of one decoding
        step): the array work is the same for one row or ten, so rows share it."""
        keys = dict.fromkeys(self._key(h) for h in histories)
        missing = [key for key in keys if self._cache.get(key) is None]
        if len(missing) > 1:
            for key, found in zip(missing, self._compute(missing)):
                self._cache.put(key, found)

    def _compute(self, histories: list[bytes]) -> list[tuple[np.ndarray, int]]:
        """`probs` of each history: per history one pass from order 1 up, stopping at the first
        context not held (a longer one is seen no more often), then the interpolation; in one call
        into the compiled helper where it is built (`_compute_compiled`), else here in Python: then
        one fixed set of array operations for all the histories' orders together."""
        if self._compiled is _UNSEEN:
            self._compiled = compiled_tables(self.tables)
        if self._compiled is not None:
            return [self._compute_compiled(history) for history in histories]
        segments = []                               # (row, table, lo, hi) per context found, orders ascending
        buckets = []
        for row, history in enumerate(histories):
            n, h, position = len(history), 0, 0
            for k in range(1, min(n, self.orders[-1]) + 1):
                h = ((h ^ (history[n - k] + 1)) * _MULTIPLIER) & _MASK
                if k != self.orders[position]:
                    continue
                context = position << 32 | h >> 32
                found = self._contexts.get(context, _UNSEEN)
                if found is _UNSEEN:
                    found = self._contexts[context] = self.tables[position].lookup(h >> 32)
                    if len(self._contexts) > CACHED_ORDER_CONTEXTS:
                        self._contexts.clear()
                if found is None or found[1] <= found[0]:       # (a damaged table: a context with no bytes)
                    break
                segments.append((row, *found))
                position += 1
            buckets.append(position)
        scale = [1.0] * len(histories)                                                      # (R,) Π λ of a row
        if not segments:
            return [(self.unigram, 0) for _ in histories]
        # p_K = Π λ · unigram + Σ_k (Π_{m > k} λ_m) · n(ctx_k, ·) / (n_k + d_k),   λ_k = d_k / (n_k + d_k)
        widths = np.array([segment[2] - segment[1] for segment in segments], np.int64)      # (S,) d_k
        counts = np.frombuffer(b"".join([segment[4] for segment in segments]), np.uint16).astype(np.float64)  # (P,)
        norms = (np.add.reduceat(counts, np.cumsum(widths) - widths) + widths).tolist()      # (S,) n_k + d_k
        coefficients = [0.0] * len(segments)
        longest = {}                                        # row → its longest context's segment
        for s in range(len(segments) - 1, -1, -1):          # highest order first within a row
            row = segments[s][0]
            longest.setdefault(row, s)
            coefficients[s] = scale[row] / norms[s]
            scale[row] *= (segments[s][2] - segments[s][1]) / norms[s]
        if self.by_confidence:
            for row, s in longest.items():
                distinct = segments[s][2] - segments[s][1]
                buckets[row] = self._confident_bucket(histories[row], buckets[row], distinct, norms[s] - distinct)
        rows = np.array([row for row, *_ in segments], np.int64)
        following = np.frombuffer(b"".join([segment[3] for segment in segments]), np.uint8)     # (P,)
        targets = np.repeat(rows * 256, widths) + following
        weights = counts * np.repeat(coefficients, widths)                                  # (P,)
        p = np.bincount(targets, weights, minlength=256 * len(histories)).reshape(len(histories), 256)
        p += np.array(scale)[:, None] * self.unigram                                        # (R, 256)
        return [(p[row], buckets[row]) if buckets[row] else (self.unigram, 0) for row in range(len(histories))]

    def _compute_compiled(self, history: bytes) -> tuple[np.ndarray, int]:
        """`probs` of one history by the compiled helper (`_table_lookup.predict`: the same pass and
        interpolation as the Python path, without its per-byte hashing in Python and a dozen numpy
        calls on arrays of a few bytes; a keystroke's search makes hundreds of these)."""
        predict, tables = self._compiled
        p = np.empty(256)
        found, distinct, total = predict(tables, self.orders, history, self.unigram, p)
        if found == 0:
            return self.unigram, 0
        return p, self._confident_bucket(history, found, distinct, total) if self.by_confidence else found

    def _confident_bucket(self, history: bytes, found: int, distinct: int, total: float) -> int:
        """The bucket by confidence of a history whose `found` longest orders were held, the longest
        with `distinct` bytes seen after it `total` times: blanks alone, else `confidence_bucket`."""
        if not history[-self.orders[found - 1]:].strip(BLANKS):
            return self.buckets - 1
        return confidence_bucket(found - 1, distinct, total, is_word_byte(history[-1]))

    def target_probs(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """p_ngram of every byte data[1:] given the bytes before it, and each one's bucket: (N − 1,) each.

        Each order's contexts are found for all positions at once; a context's count of the byte that
        came and its total are summed over its run of bytes, the j-th byte of every run at a time
        (positions sorted by run length, so step j reads only the runs longer than j): memory in
        proportion to the text, whatever the size of the table."""
        self._check_order()
        a = np.frombuffer(data, np.uint8)
        keys = dict(context_keys(a, self.orders))
        p = self.unigram[a].astype(np.float64)                                       # (N,)
        bucket = np.zeros(len(a), np.int64)
        longest = np.zeros(len(a), np.int64)          # the order of the longest context found
        alive = np.ones(len(a), bool)                 # no shorter context missing (as `probs` stops)
        for position, table in enumerate(self.tables):
            index = table.find(keys[table.order])                                    # (N,)
            index[:table.order] = -1
            alive &= index >= 0
            rows = np.flatnonzero(alive)                                             # (R,)
            if len(rows) == 0:
                break
            lo = table.starts[index[rows]].astype(np.int64)
            width = table.starts[index[rows] + 1].astype(np.int64) - lo              # (R,) d, ≥ 1
            longest_first = np.argsort(-width, kind="stable")
            rows, lo, width = rows[longest_first], lo[longest_first], width[longest_first]
            wanted = a[rows]
            joint = np.zeros(len(rows))
            total = np.zeros(len(rows))
            longer = len(rows)
            for j in range(int(width[0])):
                longer = int(np.searchsorted(-width[:longer], -j, side="left"))       # runs longer than j
                at = lo[:longer] + j
                counts = table.counts[at].astype(np.float64)
                total[:longer] += counts
                joint[:longer] += np.where(table.next_bytes[at] == wanted[:longer], counts, 0.0)
            p[rows] = (joint + width * p[rows]) / (total + width)
            bucket[rows] = confidence_bucket(position, width, total, _WORD_BYTE_MASK[a[rows - 1]]) \
                if self.by_confidence else position + 1
            longest[rows] = table.order
        if self.by_confidence:
            bucket[(longest > 0) & (blank_runs(a) >= longest)] = self.buckets - 1
        return p[1:], bucket[1:]


def compiled_tables(tables: list[OrderTable]) -> tuple[Callable, tuple] | None:
    """The compiled helper's `predict` and each order's table as it reads them (a loaded table's
    `Table`, a counted one's arrays); None where the helper is not built (or `TEXTGEN_PURE_PYTHON` is
    set), was built before it could predict, or takes fewer orders than the table has."""
    helper = table_blocks.compiled
    if helper is None or not hasattr(helper, "predict") or len(tables) > getattr(helper, "MAX_ORDERS", 0):
        return None
    found = []
    for t in tables:
        if t.blocks is not None:
            if t.blocks.compiled is None:
                return None
            found.append(t.blocks.compiled)
        else:
            found.append(helper.Arrays(*(np.require(array, dtype, "CA") for array, dtype in (
                (t.keys, np.uint32), (t.starts, np.uint32), (t.next_bytes, np.uint8), (t.counts, np.uint16)))))
    return helper.predict, tuple(found)


def confidence_bucket(position, distinct, total, in_word):
    """The bucket of a longest context found at index `position` of the orders, with `distinct`
    bytes seen after it `total` times in all, ending inside a word or not (ints or arrays): per
    order, more than one byte, one byte once, one byte more often; each at a word's end, in a word."""
    level = (distinct == 1) * (1 + (total >= 2))             # plain arithmetic: ints stay ints (`_compute`)
    return 1 + position * CONFIDENCE_LEVELS + 2 * level + in_word * 1


def blank_runs(a: np.ndarray) -> np.ndarray:
    """How many blanks (`BLANKS`) end just before each position of `a` (N,) uint8: (N,) int64."""
    blank = np.isin(a, np.frombuffer(BLANKS, np.uint8))
    after = np.arange(1, len(a) + 1)                                               # position + 1
    through = after - np.maximum.accumulate(np.where(blank, 0, after))             # blanks ending at i
    runs = np.zeros(len(a), np.int64)
    runs[1:] = through[:-1]
    return runs


def order_keys(data: np.ndarray, k: int, chunk: int = 1 << 20) -> np.ndarray:
    """`context_keys`' keys of order k alone, (N,) uint32 (zero before position k), computed a chunk
    of positions at a time: the three uint64 arrays of the hashing never exceed `chunk` entries."""
    keys = np.zeros(len(data), np.uint32)
    with np.errstate(over="ignore"):
        for start in range(k, len(data), chunk):
            stop = min(start + chunk, len(data))
            h = np.zeros(stop - start, np.uint64)
            for back in range(1, k + 1):
                h = (h ^ (data[start - back:stop - back].astype(np.uint64) + np.uint64(1))) * np.uint64(_MULTIPLIER)
            keys[start:stop] = (h >> np.uint64(32)).astype(np.uint32)
    return keys


def build_ngram(data: bytes, orders: tuple[int, ...] = ORDERS, min_count: int = MIN_COUNT,
                part_positions: int = 1 << 20, by_confidence: bool = False,
                text_end: int | None = None) -> NgramModel:
    """Count `data`: per order, the contexts seen at least `min_count` times and what followed them
    (`count_order`). `text_end`: a byte that joins texts and is no text's, so nothing is counted as
    following it or being followed by it (where a text ends says nothing of what comes next)."""
    _check_counting(orders, min_count)
    a = np.frombuffer(data, np.uint8)
    ends = None if text_end is None else np.concatenate(([0], np.cumsum(a == text_end)))    # (N + 1,) in a[:i]
    return NgramModel([count_order(a, k, min_count, part_positions, ends) for k in orders], unigram_of(a),
                      min_count, by_confidence=by_confidence)


def count_ngram_into(data: bytes | bytearray, folder: str | os.PathLike, orders: tuple[int, ...] = ORDERS,
                     min_count: int = MIN_COUNT, part_positions: int = 1 << 20) -> int:
    """`save_ngram(build_ngram(data, ...), folder)` an order at a time: each order's table goes to disk
    as soon as it is counted, so memory holds one order's table rather than all of them (for the
    default model's corpus, 87 MB in all). Returns the number of contexts kept."""
    _check_counting(orders, min_count)
    a = np.frombuffer(data, np.uint8)
    folder = Path(folder)
    folder.mkdir()
    _write_arrays(folder, _common_arrays(orders, min_count, unigram_of(a)))
    contexts = 0
    for k in orders:
        table = count_order(a, k, min_count, part_positions)
        _write_arrays(folder, _table_arrays(table))
        contexts += len(table.keys)
    return contexts


def _check_counting(orders: tuple[int, ...], min_count: int) -> None:
    if not orders or list(orders) != sorted(set(orders)) or orders[0] < 1 or orders[-1] > 64:
        raise ValueError("orders must be distinct, ascending, between 1 and 64")
    if min_count < 1:
        raise ValueError("min_count must be at least 1")


def unigram_of(a: np.ndarray) -> np.ndarray:
    """The byte frequencies of `a` (N,) uint8, each seen once more than counted (none is zero): (256,)."""
    unigram = byte_counts(a).astype(np.float64) + 1.0
    return unigram / unigram.sum()


def byte_counts(a: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """How often each byte value occurs in `a` (N,) uint8: (256,) int64. A chunk at a time:
    `np.bincount` makes an int64 copy of what it counts, 8 bytes a byte."""
    counts = np.zeros(256, np.int64)
    for start in range(0, len(a), chunk):
        counts += np.bincount(a[start:start + chunk], minlength=256)
    return counts


def count_order(a: np.ndarray, k: int, min_count: int = MIN_COUNT, part_positions: int = 1 << 20,
                ends: np.ndarray | None = None) -> OrderTable:
    """One order's table of `a` (N,) uint8: the contexts seen at least `min_count` times and what followed them.

    Each position becomes one number, context key · 256 + next byte; sorting them puts every
    context's pairs together, bytes ascending, so one sort and a few passes give the table. The
    positions are sorted a part at a time (`_parts`: runs of the keys' top byte, so the parts' tables
    follow one another in key order): memory stays about 6 bytes a byte of `a` (its keys and their
    top bytes), the order's table, and up to ~50 bytes a position of the largest part (three sorts of
    the whole text per order, as `np.unique` did, took 31 s and 950 MB for 10 MB of text; this takes
    a third of the time and a tenth of the memory; the default model's 16 MB: 270 MB for the process).
    `ends`: how many text ends (`build_ngram`'s `text_end`) lie in a[:i], for i = 0..N: a context and
    its next byte holding one are not counted."""
    keys = order_keys(a, k)[k:]                                                       # (N − k,)
    following = a[k:]
    if ends is not None:
        positions = max(len(a) - k, 0)
        kept = ends[k + 1:k + 1 + positions] == ends[:positions]             # none in a[i − k:i + 1], i = k..N−1
        keys, following = keys[kept], following[kept]
    if len(keys) <= part_positions:
        parts = [_count_pairs(keys, following, min_count)]
    else:
        top = np.empty(len(keys), np.uint8)                                           # (N − k,) each key's top byte
        np.right_shift(keys, np.uint32(24), out=top, casting="unsafe")
        parts = [_count_pairs(keys[at], following[at], min_count) for at in _parts(top, part_positions)]
        del top
    del keys
    starts = np.concatenate([[0], np.cumsum([len(p[1]) for p in parts])])[:-1]
    return OrderTable(
        k, np.concatenate([p[0] for p in parts]).astype(np.uint32),
        np.append(np.concatenate([p[2] + offset for p, offset in zip(parts, starts)]),
                  sum(len(p[1]) for p in parts)).astype(np.uint32),
        np.concatenate([p[1] for p in parts]).astype(np.uint8),
        np.concatenate([p[3] for p in parts]).astype(np.uint16))


def _parts(top: np.ndarray, part_positions: int) -> Iterator[np.ndarray]:
    """The positions (n,) int64 of each part: runs of consecutive top bytes holding at most
    `part_positions` positions together, in ascending order (one top byte may hold more: the few
    contexts of a low order): parts of about one size whatever the size of the text."""
    sizes = byte_counts(top)                                                          # (256,)
    runs: list[tuple[int, int]] = []                                                  # (first, last) top byte
    held = 0
    for byte in np.flatnonzero(sizes).tolist():
        if runs and held + int(sizes[byte]) <= part_positions:
            runs[-1], held = (runs[-1][0], byte), held + int(sizes[byte])
        else:
            runs.append((byte, byte))
            held = int(sizes[byte])
    for first, last in runs:
        yield np.flatnonzero(top == first if first == last else np.subtract(top, first, dtype=np.uint8) <= last - first)


def _count_pairs(keys: np.ndarray, following: np.ndarray, min_count: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One part's table: its contexts (C,) sorted, the bytes after each (P,), where each context's
    bytes start (C,), their counts (P,); contexts seen fewer than `min_count` times left out."""
    pairs = keys.astype(np.uint64)                                                     # (n,), in place:
    pairs <<= np.uint64(8)                                                             # no temporaries
    pairs |= following
    pairs.sort()
    if len(pairs) == 0:
        empty = np.zeros(0, np.int64)
        return empty.astype(np.uint32), empty.astype(np.uint8), empty, empty.astype(np.uint16)
    first = np.flatnonzero(np.concatenate([[True], pairs[1:] != pairs[:-1]]))         # (P,) each pair's first
    counts = np.diff(np.append(first, len(pairs)))                                     # (P,)
    pairs = pairs[first]
    contexts = pairs >> np.uint64(8)
    opens = np.flatnonzero(np.concatenate([[True], contexts[1:] != contexts[:-1]]))    # (C,) each context's first pair
    widths = np.diff(np.append(opens, len(pairs)))                                     # (C,)
    kept = np.add.reduceat(counts, opens) >= min_count                                 # (C,)
    pair_kept = np.repeat(kept, widths)
    kept_widths = widths[kept]
    return (contexts[opens[kept]].astype(np.uint32), (pairs[pair_kept] & np.uint64(0xFF)).astype(np.uint8),
            np.cumsum(kept_widths) - kept_widths, np.minimum(counts[pair_kept], MAX_COUNT).astype(np.uint16))


def save_ngram(model: NgramModel, folder: str | os.PathLike) -> None:
    """Write the table as one .npy file per array into the new `folder` (the caller writes into a
    folder it renames into place); .npy, not .npz, so that loading can map them without reading."""
    folder = Path(folder)
    folder.mkdir()
    if model.folder is not None and _linked_or_copied(model.folder, folder):
        return
    _write_arrays(folder, _common_arrays(model.orders, model.min_count, model.unigram))
    for t in model.tables:
        _write_arrays(folder, _table_arrays(t))


# The names of the files `save_ngram` writes (`_common_arrays`, `_table_arrays`): all a table folder
# of ours holds, and all that is ever removed from one.
_TABLE_FILE = re.compile(r"(?:orders|min_count|unigram"
                         r"|k[1-9][0-9]?\.(?:keys|starts|next_bytes|counts|block_keys))\.npy")


def is_table_file(name: str) -> bool:
    """Whether `name` is the name of a file `save_ngram` writes."""
    return _TABLE_FILE.fullmatch(name) is not None


def _common_arrays(orders: tuple[int, ...], min_count: int, unigram: np.ndarray) -> dict[str, np.ndarray]:
    return {"orders": np.array(orders, np.int64), "min_count": np.array(min_count, np.int64),
            "unigram": unigram.astype(np.float64)}


def _table_arrays(t: OrderTable) -> dict[str, np.ndarray]:
    """An order's arrays, and the first key of every block of its keys (`block_keys`), so that
    loading need not read the keys to find them."""
    return {f"k{t.order}.keys": t.keys, f"k{t.order}.starts": t.starts,
            f"k{t.order}.next_bytes": t.next_bytes, f"k{t.order}.counts": t.counts,
            f"k{t.order}.block_keys": block_index(t.keys)}


def _write_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        with open(folder / f"{name}.npy", "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())


def _linked_or_copied(source: Path, folder: Path) -> bool:
    """Give `folder` the files of a saved table: hard links where the file system allows (a model
    fine-tuned from the default shares its table, files are never written in place), else copies.
    False, `folder` left empty, where the source is gone."""
    names = sorted(path.name for path in source.glob("*.npy")) if source.is_dir() else []
    if not names:
        return False
    for name in names:
        try:
            os.link(source / name, folder / name)
        except OSError:
            shutil.copy2(source / name, folder / name)
    return True


def _advise(array: np.ndarray, advice: str) -> None:
    """madvise a mapped array where the system has `advice`: MADV_RANDOM, so that the pages that
    scoring a text touches do not read ahead the pages around them from disk (31 completions from a
    cold page cache, when lookups went through the mapping: 95 MB of the table resident without, 48
    MB with); MADV_DONTNEED, so that what loading read is not kept resident (it stays in the page
    cache)."""
    mapping = getattr(array, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, advice):
        mapping.madvise(getattr(mmap, advice))


def load_ngram(folder: str | os.PathLike) -> NgramModel:
    """Map a table written by `save_ngram` (the editor touches only the pages its lookups read, so
    the table costs no time to load and little memory), its arrays' types and lengths checked;
    NgramFileError says what is wrong. What their values could break is checked where they are used."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NgramFileError(f"{folder}: missing, or not a folder")

    readers: dict[str, BlockReader] = {}

    def array(name: str, dtype: str, ndim: int = 1, mapped: bool = True,
              max_bytes: int = MAX_READ_ARRAY_BYTES) -> np.ndarray:
        """One array: a regular file whose size is what its header says; mapped (with a reader of
        its blocks in `readers`, on the same open file), or (the few small ones) read, once its
        header is checked."""
        path = folder / f"{name}.npy"
        try:
            with open_regular(path) as f:
                shape, fortran, found, size = read_npy_header(f)
                if found != np.dtype(dtype) or len(shape) != ndim:
                    raise NgramFileError(f"{path}: {found} with {len(shape)} dimensions, expected {dtype} with {ndim}")
                if os.fstat(f.fileno()).st_size != f.tell() + size:
                    raise NgramFileError(f"{path}: unusable ({os.fstat(f.fileno()).st_size:,} bytes where its "
                                         f"header says {f.tell() + size:,}); build the table again")
                if not mapped and size > max_bytes:
                    raise NgramFileError(f"{path}: {size:,} bytes, more than such an array ever holds")
                order, data_offset = "F" if fortran else "C", f.tell()
                value = np.memmap(f, found, "r", data_offset, shape, order) if mapped \
                    else np.frombuffer(f.read(size), found).reshape(shape, order=order)
                if mapped:
                    readers[name] = BlockReader(os.fdopen(os.dup(f.fileno()), "rb"), data_offset, found,
                                                int(np.prod(shape)), searched=name.endswith(("keys", "starts")))
        except FileNotFoundError:
            raise NgramFileError(f"{path}: missing") from None
        except NgramFileError:
            raise
        except RefusedFile as exc:
            raise NgramFileError(str(exc)) from None
        except (ValueError, OSError, EOFError) as exc:
            raise NgramFileError(f"{path}: unusable ({exc}); an n-gram table holds plain arrays of numbers") from None
        if mapped:
            _advise(value, "MADV_RANDOM")
        return value

    def block_keys(k: int, keys: np.ndarray) -> np.ndarray:
        """Every block's first key: from the file the table was written with, where it has one that
        `fits` the keys; else from the mapped keys, which touches every page (4 ms for the default
        model's 27 MB of keys from the page cache, 375–405 ms from the disk)."""
        if (folder / f"k{k}.block_keys.npy").is_file():
            try:
                stored = array(f"k{k}.block_keys", "uint32", mapped=False,
                               max_bytes=4 * -(-len(keys) // KEYS_PER_BLOCK))
            except NgramFileError:                  # (redundant data: the keys say it again)
                stored = None
            if stored is not None and fits(stored, keys):
                return stored
        return block_index(keys)

    orders = tuple(int(k) for k in array("orders", "int64", mapped=False))
    if not orders or list(orders) != sorted(set(orders)) or orders[0] < 1 or orders[-1] > 64:
        raise NgramFileError(f"{folder}: orders {orders} must be distinct, ascending, between 1 and 64")
    unigram = array("unigram", "float64", mapped=False)
    if unigram.shape != (256,) or not np.all(unigram > 0) or abs(unigram.sum() - 1) > 1e-6:
        raise NgramFileError(f"{folder}: unigram must be 256 positive probabilities summing to 1")
    tables = []
    for k in orders:
        keys, starts = array(f"k{k}.keys", "uint32"), array(f"k{k}.starts", "uint32")
        next_bytes, counts = array(f"k{k}.next_bytes", "uint8"), array(f"k{k}.counts", "uint16")
        if len(starts) != len(keys) + 1 or len(counts) != len(next_bytes) or starts[0] != 0 \
                or starts[-1] != len(next_bytes):
            raise NgramFileError(f"{folder}: order {k}'s arrays do not agree in length")
        parts = [readers[f"k{k}.{part}"] for part in ("keys", "starts", "next_bytes", "counts")]
        blocks = TableBlocks(*parts, first_keys=first_keys(block_keys(k, keys)))
        for mapped_array in (keys, starts, next_bytes, counts):
            _advise(mapped_array, "MADV_DONTNEED")
        plain = (np.asarray(a) for a in (keys, starts, next_bytes, counts))         # plain views: 2× faster
        tables.append(OrderTable(k, *plain, blocks=blocks))
    return NgramModel(tables, unigram, int(array("min_count", "int64", 0, mapped=False)), folder=folder)


def default_weights(model: NgramModel) -> tuple[float, ...]:
    """One mixing weight per bucket (`NgramModel.buckets`) before any are fitted."""
    return (DEFAULT_WEIGHT,) * model.buckets


def fit_ngram_weights(model: NgramModel, gru_probs: np.ndarray, sample: bytes,
                      defaults: tuple[float, ...] | None = None, max_weight: float = 0.95) -> tuple[float, ...]:
    """The mixing weight per bucket that fits held-out `sample` best, given the GRU's probabilities
    of its bytes sample[1:] (`mixing.fit_bucket_weights`); buckets seen too rarely keep `defaults`."""
    ngram_probs, buckets = model.target_probs(sample)
    fitted = fit_bucket_weights(gru_probs, ngram_probs, buckets, defaults or default_weights(model),
                                max_weight=max_weight, steps=round(max_weight * 100) + 1)
    return tuple(round(w, 4) for w in fitted)
