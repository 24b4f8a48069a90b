"""Training windows streamed from files with tf.data, for corpora too large to hold in memory.

A corpus is a list of byte ranges of files. Training reads them as shards (at most `SHARD_BYTES`
each, so one huge file still mixes well), many shards interleaved, at a random alignment on every
pass; only the windows in the shuffle buffer are in memory. Validation holds out whole files when
there are enough of them, otherwise the tail of every file (as `held_out.split_texts` does).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

SHARD_BYTES = 8 * 1024 * 1024
SHUFFLE_WINDOWS = 4096                   # ~0.5 MB of 128-byte windows
MAX_OPEN_SHARDS = 16


@dataclass(frozen=True)
class TrainingFile:
    """One named training file, read while training rather than up front."""

    name: str
    path: Path
    size: int


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of a file of `size` bytes."""

    path: str
    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start


def split_files(files: list[TrainingFile], val_fraction: float) -> tuple[list[ByteRange], list[ByteRange]]:
    """Training and held-out ranges: whole files when there are at least 1 / val_fraction of them.

    Held-out files are chosen by a hash of their name, so the split is the same on every worker and
    every run; a file that would hold out far more than `val_fraction` is passed over. With fewer
    files (or only such big ones), the tail `val_fraction` of every file is held out instead.
    """
    whole = [ByteRange(str(f.path), 0, f.size, f.size) for f in files if f.size > 0]
    if len(whole) * val_fraction >= 1:
        target = val_fraction * sum(r.length for r in whole)
        val, held = [], 0
        for r in sorted(whole, key=lambda r: hashlib.sha256(r.path.encode()).digest()):
            if held >= target:
                break
            if held + r.length <= 1.5 * target:
                val.append(r)
                held += r.length
        if val:
            chosen = set(val)
            return [r for r in whole if r not in chosen], val
    train, val = [], []
    for r in whole:
        cut = r.end - max(1, int(r.length * val_fraction))
        train.append(ByteRange(r.path, 0, cut, r.size))
        val.append(ByteRange(r.path, cut, r.end, r.size))
    return train, val


def shards(ranges: list[ByteRange], shard_bytes: int = SHARD_BYTES) -> list[ByteRange]:
    """`ranges` cut into pieces of at most `shard_bytes`."""
    pieces = []
    for r in ranges:
        for start in range(r.start, r.end, shard_bytes):
            pieces.append(ByteRange(r.path, start, min(start + shard_bytes, r.end), r.size))
    return pieces


def train_windows(ranges: list[ByteRange], seq_len: int, batch_size: int, seed: int,
                  input_context: tf.distribute.InputContext) -> tf.data.Dataset:
    """Endless shuffled (input, target) batches, (B, T) int32 each, from this input pipeline's shards.

    With several input pipelines (workers), each reads its own shards when there are enough of them;
    otherwise every pipeline reads all shards in its own random order.
    """
    record = seq_len + 1
    pieces = [s for s in shards(ranges) if s.length >= record]
    if not pieces:
        raise ValueError(f"no training file is longer than one window ({record} bytes)")
    pipelines, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(pieces) >= pipelines:
        pieces = pieces[index::pipelines]
    seed += index
    table = tf.data.Dataset.from_tensor_slices((
        [p.path for p in pieces],
        tf.constant([p.start for p in pieces], tf.int64),
        tf.constant([p.end for p in pieces], tf.int64),
        tf.constant([p.size for p in pieces], tf.int64)))
    visits = tf.data.Dataset.zip((
        table.shuffle(len(pieces), seed=seed, reshuffle_each_iteration=True).repeat(),
        tf.data.Dataset.random(seed=seed)))

    def records(visit, r):
        path, start, end, size = visit
        offset = r % tf.minimum(tf.cast(record, tf.int64), end - start - record + 1)   # a new alignment per pass
        return _records(path, start + offset, end, size, record)

    return (visits.interleave(records, cycle_length=min(MAX_OPEN_SHARDS, len(pieces)), block_length=1,
                              num_parallel_calls=tf.data.AUTOTUNE)
            .shuffle(SHUFFLE_WINDOWS, seed=seed)
            .map(_input_and_target, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE))


def val_windows(ranges: list[ByteRange], seq_len: int, batch_size: int, max_bytes: int) -> tf.data.Dataset:
    """The same held-out windows in the same order every epoch, from all held-out ranges in turn; cached."""
    record = seq_len + 1
    usable = [r for r in ranges if r.length >= record]
    if not usable:
        raise ValueError(f"no held-out part is longer than one window ({record} bytes)")
    table = tf.data.Dataset.from_tensor_slices((
        [r.path for r in usable],
        tf.constant([r.start for r in usable], tf.int64),
        tf.constant([r.end for r in usable], tf.int64),
        tf.constant([r.size for r in usable], tf.int64)))
    windows = min(sum(r.length // record for r in usable), max(1, max_bytes // record))
    return (table.interleave(lambda path, start, end, size: _records(path, start, end, size, record),
                             cycle_length=min(64, len(usable)), block_length=1)
            .take(windows)
            .apply(tf.data.experimental.assert_cardinality(windows))   # so Keras knows where an epoch ends
            .map(_input_and_target)
            .batch(batch_size)
            .cache())


def held_out_bytes(ranges: list[ByteRange], max_bytes: int) -> int:
    """How many held-out bytes `val_windows` reads."""
    return min(sum(r.length for r in ranges), max_bytes)


def read_sample(ranges: list[ByteRange], max_bytes: int) -> bytes:
    """Up to `max_bytes` of the held-out text, an equal share from each range (the match model is fitted on it)."""
    if not ranges:
        return b""
    share = max(4096, max_bytes // len(ranges))
    parts, total = [], 0
    for r in ranges:
        with open(r.path, "rb") as f:
            f.seek(r.start)
            part = f.read(min(r.length, share, max_bytes - total))
        parts.append(part)
        total += len(part)
        if total >= max_bytes:
            break
    return b"\n".join(parts)


def sha256_of_files(files: list[TrainingFile]) -> str:
    """The sha256 of the files' concatenation, read in 1 MB blocks (what `corpus_summary` gives for texts)."""
    digest = hashlib.sha256()
    for f in files:
        with open(f.path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _records(path, start, end, size, record: int) -> tf.data.Dataset:
    """Consecutive `record`-byte strings of bytes [start, end) of a file (a partial last record is skipped)."""
    count = (end - start) // record
    return tf.data.FixedLengthRecordDataset(path, record, header_bytes=start,
                                            footer_bytes=size - start - count * record)


def _input_and_target(record):
    ids = tf.cast(tf.io.decode_raw(record, tf.uint8), tf.int32)                           # (T + 1,)
    return ids[:-1], ids[1:]
