"""An n-gram table's arrays read a block at a time into one bounded cache, instead of mapped.

A lookup reads a few numbers of each order's arrays: the context among the sorted keys, where its
bytes start, the bytes and their counts. Mapped, each such read faults a page in, and the kernel
brings in the whole large folio around it (the page cache holds files in folios of up to 2 MB):
after five suggestions 67 MB of the default model's 87 MB table was resident in the host, after
twenty 82 MB. Read here, a lookup costs a `pread` of a 1 KB block where the block is not cached,
and the blocks of every table in the process share one cache of `CACHE_BYTES`: what the tables take
of the host's memory is bounded by that, on purpose, whatever their size.

The keys are found through the first key of every block, kept in memory (4 bytes a block: 105 KB
for the default model's 6.8 million contexts), so a lookup reads one block of keys, not the dozen
that a binary search over the file would. Blocks of keys and starts are kept as `array.array`s and
searched with `bisect`: a lookup is a handful of C calls, as fast as numpy's on the mapped arrays.

Where the optional compiled helper is built (`_table_lookup.c`, by `pip install`), a lookup is one
call into it instead, doing the same with a cache of its own of the same size: the n-gram's share of
a keystroke is mostly these lookups (and `ngram` asks the helper for a history's whole prediction,
lookups included: `_table_lookup.predict`). `TEXTGEN_PURE_PYTHON=1` in the environment turns it off.
"""
from __future__ import annotations

import array
import bisect
import itertools
import os
import threading
from typing import BinaryIO, Callable

import numpy as np

try:
    from textgen_core.memory import _table_lookup as compiled
except ImportError:                        # not built (no C compiler): the same lookups in Python
    compiled = None
if os.environ.get("TEXTGEN_PURE_PYTHON"):
    compiled = None

BLOCK_BYTES = 1024
# The cache is a small share of the table: contexts are hashed, so a lookup lands anywhere in it,
# and what is read again is mostly the same contexts as the keystroke before (bench/RESULTS.md).
CACHE_BYTES = 8 << 20
_READERS = itertools.count()
_TYPECODES = {np.dtype(np.uint32): "I", np.dtype(np.uint16): "H"}


class _BlockCache:
    """Blocks by (reader, block number), at most `size` of them. Where the cache is full, an eighth
    of it goes, the oldest put first: lookups of hashed contexts land anywhere in a table, so that
    keeping the least recently used (a lock and a reordering on every read) would keep no more of
    what is read again than keeping the most recently put."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[int, object] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: int, block: object) -> None:
        with self._lock:
            self._entries[key] = block
            if len(self._entries) > self.size:
                for old in list(itertools.islice(self._entries, self.size // 8)):
                    del self._entries[old]


BLOCKS = _BlockCache(CACHE_BYTES // BLOCK_BYTES)
_ENTRIES = BLOCKS._entries             # read without a call: a lookup reads four blocks an order


class BlockReader:
    """One array of a .npy file, read a block at a time into the shared cache (`BLOCKS`)."""

    def __init__(self, file: BinaryIO, data_offset: int, dtype: np.dtype, count: int, searched: bool = False) -> None:
        self._file = file                    # kept open: the file read is the one checked at loading
        self._fd = file.fileno()
        self._offset = data_offset
        self.dtype = np.dtype(dtype)
        self.count = count
        self.per_block = BLOCK_BYTES // self.dtype.itemsize
        self._key = next(_READERS) << 40
        typecode = _TYPECODES.get(self.dtype)
        if typecode is not None and array.array(typecode).itemsize != self.dtype.itemsize:
            typecode = None
        # blocks of numbers that are searched or indexed as array.array (in C), others as bytes
        self._convert: Callable[[bytes], object] = (lambda data: array.array(typecode, data)) \
            if typecode and searched else bytes

    def block(self, b: int):
        """Elements [b · per_block, (b + 1) · per_block) (fewer in the last block): an array.array
        where the reader is `searched`, else bytes."""
        found = _ENTRIES.get(self._key | b)
        if found is None:
            first = b * self.per_block
            wanted = min(self.per_block, self.count - first) * self.dtype.itemsize
            data = os.pread(self._fd, wanted, self._offset + first * self.dtype.itemsize)
            if len(data) != wanted:
                raise OSError(f"an n-gram table file ended early ({len(data)} of {wanted} bytes at block {b})")
            found = self._convert(data)
            BLOCKS.put(self._key | b, found)
        return found

    def item(self, i: int) -> int:
        return self.block(i // self.per_block)[i % self.per_block]

    def raw(self, lo: int, hi: int) -> bytes:
        """The bytes of elements [lo, hi), from one block or a few (a reader of bytes blocks)."""
        per, size = self.per_block, self.dtype.itemsize
        first, last = lo // per, (hi - 1) // per
        if first == last:
            return self.block(first)[(lo - first * per) * size:(hi - first * per) * size]
        data = b"".join(self.block(b) for b in range(first, last + 1))
        return data[(lo - first * per) * size:(hi - first * per) * size]


KEYS_PER_BLOCK = BLOCK_BYTES // np.dtype(np.uint32).itemsize


def block_index(keys: np.ndarray) -> np.ndarray:
    """The first key of every block of a table's sorted keys (uint32): what a lookup bisects."""
    return np.ascontiguousarray(keys[::KEYS_PER_BLOCK], np.uint32)


def fits(index: np.ndarray, keys: np.ndarray) -> bool:
    """Whether a stored `block_index` belongs to `keys`: its length, ascending, its first and last
    entries (two pages of the keys read, not all of them)."""
    blocks = -(-len(keys) // KEYS_PER_BLOCK)
    if len(index) != blocks:
        return False
    if blocks == 0:
        return True
    return (index[0] == keys[0] and index[-1] == keys[(blocks - 1) * KEYS_PER_BLOCK]
            and bool(np.all(index[1:] > index[:-1])))


def first_keys(keys: np.ndarray) -> array.array | list[int]:
    """The first key of every block (uint32), as 4-byte numbers `bisect` searches in C (a list of
    ints would take 36 bytes a block)."""
    typecode = _TYPECODES[np.dtype(np.uint32)]
    if array.array(typecode).itemsize != 4:
        return np.asarray(keys).tolist()
    return array.array(typecode, np.ascontiguousarray(keys, np.uint32).tobytes())


class TableBlocks:
    """One order's lookups through `BlockReader`s of its four arrays."""

    def __init__(self, keys: BlockReader, starts: BlockReader, next_bytes: BlockReader, counts: BlockReader,
                 first_keys: array.array | list[int]) -> None:
        """`first_keys`: the first key of every block of `keys`, ascending."""
        if keys.per_block != starts.per_block:
            raise ValueError("keys and starts must be read in blocks of as many numbers")
        self.keys, self.starts, self.next_bytes, self.counts = keys, starts, next_bytes, counts
        self.first_keys = first_keys
        self.compiled = None                 # the compiled helper's Table, where it is built
        readers = (keys, starts, next_bytes, counts)
        if compiled is not None and isinstance(first_keys, array.array) \
                and [r.dtype for r in readers] == [np.dtype(t) for t in (np.uint32, np.uint32, np.uint8, np.uint16)]:
            specs = [(r._fd, r._offset, r.count) for r in readers]
            self.compiled = compiled.Table(*specs, first_keys, readers)
            self.lookup = self.compiled.lookup                                   # the same, in one call

    def lookup(self, key: int) -> tuple[int, int, bytes, bytes] | None:
        """One key's context: where its bytes are ([lo, hi)), the bytes that followed it and their
        counts (uint16) as raw bytes; None where the table does not hold it. One method for the
        whole lookup (the keys' block, the starts', the bytes and counts), since a suggestion makes
        hundreds."""
        b = bisect.bisect_right(self.first_keys, key) - 1
        if b < 0:
            return None
        block = self.keys.block(b)
        at = bisect.bisect_left(block, key)
        if at >= len(block) or block[at] != key:
            return None
        starts = self.starts.block(b)                   # keys and starts share their block numbers
        lo = starts[at]
        hi = starts[at + 1] if at + 1 < len(starts) else self.starts.item(b * self.starts.per_block + at + 1)
        return lo, hi, self.next_bytes.raw(lo, hi), self.counts.raw(lo, hi)
