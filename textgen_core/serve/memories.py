"""What the editor's suggestions remember besides the model: the project of the current buffer and
the open buffers, kept up to date in the background and handed to the engine (`Engine.set_memories`).

- The project: its index is mapped from the cache at once if there is one; an indexing process
  (`textgen index`, at low priority, its memory never the host's) then brings it up to date, counting
  only the files changed since (`memory.project_cache`). A written buffer indexes again a little
  later (`REINDEX_DELAY_S`: a burst of writes, one run).
- The open buffers: their texts, the current one first, counted into a small n-gram in a background
  thread whenever they change (`memory.open_buffers`), so text written a moment ago, below the cursor
  or in another buffer is remembered at once.

Nothing here blocks the caller: every call returns at once, and the engine keeps serving the last
memories until new ones are ready.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from textgen_core.memory.ngram import NgramModel
from textgen_core.memory.open_buffers import BUFFER_WEIGHTS, MAX_BUFFER_BYTES, build_buffer_memory
from textgen_core.memory.project_cache import (
    CachedProject,
    ProjectCacheError,
    Settings,
    clear_cache,
    default_cache_dir,
    load_cached,
)
from textgen_core.memory.project_files import holds_a_private_key, inside, private_reason, project_root
from textgen_core.model.safe_read import MB
from textgen_core.serve.child_python import module_command
from textgen_core.serve.heap import give_back_freed

log = logging.getLogger("textgen")

REINDEX_DELAY_S = 5.0
INDEX_TIMEOUT_S = 600.0
INDEX_NICE = 10
# Buffers remembered (most recently entered first); their texts are capped by MAX_BUFFER_BYTES in all.
MAX_BUFFERS = 64

Tables = list[tuple[NgramModel, tuple[float, ...]]]


@dataclass(frozen=True)
class ProjectOptions:
    """`g:textgen.project` as the Lua side sends it."""

    enabled: bool = True
    max_mb: int = 32
    exclude: tuple[str, ...] = ()
    cache_dir: str = ""

    @classmethod
    def from_lua(cls, raw: Any) -> ProjectOptions:
        raw = raw if isinstance(raw, dict) else {}
        exclude = raw.get("exclude") if isinstance(raw.get("exclude"), list) else []
        max_mb = raw.get("max_mb")
        return cls(bool(raw.get("enabled", True)),
                   max_mb if isinstance(max_mb, int) and 1 <= max_mb <= 512 else 32,
                   tuple(str(g) for g in exclude), str(raw.get("cache_dir") or ""))


class Memories:
    """The project and open-buffer memories of one editor; `on_change(tables)` receives the n-grams
    to mix in (the project's, its changed files', the buffers') each time they change."""

    def __init__(self, on_change: Callable[[Tables], None], model_name: Callable[[], str],
                 python: str = sys.executable) -> None:
        self._on_change = on_change
        self._model_name = model_name
        self._python = python
        self._lock = threading.Lock()
        self.options = ProjectOptions()
        # the project
        self.root: Path | None = None
        self.cached: CachedProject | None = None
        self.from_cache = False
        self.state = "none"              # none, off, indexing, ready, failed
        self.reason: str | None = None
        self._process: subprocess.Popen | None = None
        self._index_again = False
        self._index_lock = threading.Lock()
        self._reindex_timer: threading.Timer | None = None
        # the open buffers
        self._texts: OrderedDict[int, bytes] = OrderedDict()
        self._paths: dict[int, str] = {}                 # each buffer's file, as last told
        self._private: set[int] = set()                  # buffers whose text is never kept (`private`)
        self._holding_keys: set[int] = set()             # buffers whose last text held a private key
        self._buffer_table: NgramModel | None = None
        self._buffer_bytes = 0
        self._buffers_changed = threading.Event()
        self._closing = False
        self._buffer_thread = threading.Thread(target=self._count_buffers, name="textgen-buffers", daemon=True)
        self._buffer_thread.start()

    # -- events from the editor ------------------------------------------------------------------
    def buffer_event(self, buf: int, event: str, path: str | None, text: str | bytes | None,
                     options: ProjectOptions) -> None:
        """A buffer was entered, written, left or unloaded (`lua/textgen/memory.lua` says when). The
        text of a private buffer (`private`) is never kept. Options that changed since the last event
        (`g:textgen.project` set after the plugin loaded) hold from this event on (`_options_changed`)."""
        previous, self.options = self.options, options
        served = self.root
        if event == "enter" and path:
            self.open_project_of(path)                    # a project served anew is served with `options`
        elif not options.enabled and self.root is not None:
            self._forget_project("off")
        if (options.max_mb, options.exclude) != (previous.max_mb, previous.exclude):
            self._options_changed(options.exclude != previous.exclude, self.root is not None and self.root == served)
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        secret_file = event != "unload" and bool(path) and self._private_reason(path) is not None
        with self._lock:
            if data is not None:                          # a text tells whether it holds a key, until the next
                (self._holding_keys.add if holds_a_private_key(data) else self._holding_keys.discard)(buf)
            private = event != "unload" and (secret_file or buf in self._holding_keys)
            if event == "unload":
                self._paths.pop(buf, None)
                self._holding_keys.discard(buf)
            elif path:
                self._paths[buf] = path
            if event == "unload" or path or data is not None:       # a path or a text (re)tells what it is
                (self._private.add if private else self._private.discard)(buf)
            if event == "unload" or buf in self._private:
                changed = self._texts.pop(buf, None) is not None
            else:
                changed = data is not None
                if data is not None:
                    self._texts[buf] = data[:MAX_BUFFER_BYTES]
                if buf in self._texts:
                    moved = next(iter(self._texts)) != buf
                    self._texts.move_to_end(buf, last=False)          # nearest first
                    # the order decides what is counted only where the texts exceed the cap
                    changed = changed or moved and sum(map(len, self._texts.values())) > MAX_BUFFER_BYTES
                while len(self._texts) > MAX_BUFFERS:
                    self._texts.popitem()
        if changed:
            self._buffers_changed.set()
        if event == "write" and path and self.root is not None and inside(Path(path), self.root):
            self._index_later()

    def private(self, buf: int) -> bool:
        """Whether buffer `buf`'s file is one the project never reads, a secret (`.env`, `*.pem`, ...) or
        a file the user's `exclude` globs name, or its text holds a private key: its text is in no memory,
        and nothing typed there is learned, so that it is never suggested in another buffer."""
        with self._lock:
            return buf in self._private

    def _private_reason(self, path: str) -> str | None:
        """Why the file at `path` is private (`private`), matched from its project's root (the one
        served, else its own: the user's globs hold with project memory off too); None if it is not."""
        try:
            root = self.root if self.root is not None and inside(path, self.root) else project_root(path)
            return private_reason(path, root, self.options.exclude)
        except (OSError, ValueError):
            return "unreadable"

    def open_project_of(self, path: str) -> None:
        """Serve the project holding `path` (from its cached index at once, then brought up to date);
        a file in no project, or project memory off, leaves only the buffers."""
        if not self.options.enabled:
            self._forget_project("off")
            return
        try:
            root = project_root(path)
        except (OSError, ValueError):
            root = None
        if root is None:
            self._forget_project("none")
        elif root != self.root:
            self._serve(root)

    def _serve(self, root: Path) -> None:
        """Serve the project at `root`, from the cache where it holds an index built with the options
        in force, and index it (brought up to date, or counted with those options)."""
        self._forget_project("none")
        self.root = root
        self.from_cache = self._load_cache()
        self._index()

    def _options_changed(self, exclude_changed: bool, serve_again: bool) -> None:
        """`max_mb` or `exclude` changed: the project served before (`serve_again`) is served by an
        index built with them (the one in use, built with the old, is dropped at once: a file excluded
        now must not be suggested while the new one is counted); with other globs, every buffer's file
        is looked at again, and the texts of those that are private now are dropped."""
        if serve_again:
            self._serve(self.root)
        if not exclude_changed:
            return
        with self._lock:
            paths = dict(self._paths)
        private = {buf for buf, path in paths.items() if self._private_reason(path) is not None}
        with self._lock:
            self._private = private | self._holding_keys | (self._private - paths.keys())
            dropped = [buf for buf in private if self._texts.pop(buf, None) is not None]
        if dropped:
            self._buffers_changed.set()

    def rebuild(self) -> str:
        """Count the current project again, every file; says what happens, in one line."""
        if not self.options.enabled:
            return "project memory is off (g:textgen.project.enabled = false): there is nothing to index"
        if self.root is None:
            return "no project for this buffer (no git work tree or project marker above its file)"
        self._index(rebuild=True)
        return f"indexing {self.root} again in the background; :TextGenProject shows when it is done"

    def clear(self) -> str:
        """Remove every cached project index; the one in use serves on from memory until the next start."""
        cache_dir = self._cache_dir()
        removed, freed = clear_cache(cache_dir)
        self.from_cache = False                   # what is served is no longer in any cache
        return (f"removed {removed} cached project index{'es' if removed != 1 else ''} ({freed / MB:.1f} MB) "
                f"from {cache_dir}; the project in use stays in memory until Neovim quits; "
                "g:textgen.project.enabled = false turns project memory off")

    # -- status ------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        project = None
        if self.root is not None or self.state == "off":
            project = {"root": str(self.root) if self.root else "", "state": self.state, "reason": self.reason,
                       "from_cache": self.from_cache, "files": 0, "bytes": 0, "changed_files": 0}
            if self.cached is not None:
                summary = self.cached.summary()
                project.update(files=summary["files"], bytes=summary["bytes"], built_at=summary["built_at"],
                               changed_files=summary["changed_files"], seconds=summary["seconds"],
                               cache=summary["cache"])
        with self._lock:
            buffers = {"count": len(self._texts), "bytes": self._buffer_bytes, "private": len(self._private)}
        return {"project": project, "buffers": buffers, "cache_dir": self._cache_dir()}

    def close(self) -> None:
        self._closing = True
        self._buffers_changed.set()
        if self._reindex_timer is not None:
            self._reindex_timer.cancel()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    # -- the project -------------------------------------------------------------------------------
    def _cache_dir(self) -> str:
        if self.options.cache_dir:
            return self.options.cache_dir
        return str(default_cache_dir())

    def _settings(self) -> Settings:
        return Settings(self.options.max_mb * MB, self.options.exclude, self._model_name())

    def _forget_project(self, state: str) -> None:
        if self.root is None and self.state == state:
            return
        self.root, self.cached, self.from_cache, self.state, self.reason = None, None, False, state, None
        self._publish()

    def _load_cache(self) -> bool:
        """Map the project's cached index, if the cache holds one built with these settings."""
        root = self.root
        try:
            cached = load_cached(self._cache_dir(), root, self._settings()) if root else None
        except ProjectCacheError as exc:
            log.warning("textgen: %s", exc)
            cached = None
        if cached is None or root != self.root:
            return False
        self.cached, self.state = cached, "ready"
        self._publish()
        return True

    def _index(self, rebuild: bool = False) -> None:
        """Start `textgen index` on the project (one run at a time; a later request runs after it)."""
        with self._index_lock:
            if self.root is None:
                return
            if self._process is not None and self._process.poll() is None:
                self._index_again = True
                return
            self._start_index(rebuild)

    def _start_index(self, rebuild: bool) -> None:
        command = module_command(self._python, "textgen_core", "index", str(self.root), "--json",
                                 "--nice", str(INDEX_NICE), "--cache-dir", self._cache_dir(),
                                 "--max-mb", str(self.options.max_mb), "--model", self._model_name(),
                                 *(f"--exclude={g}" for g in self.options.exclude))
        if rebuild:
            command.append("--rebuild")
        if self.cached is None:
            self.state = "indexing"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                          os.environ.get("PYTHONPATH")]))}
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            self.state, self.reason = "failed", f"could not start the indexing ({exc.strerror})"
            return
        threading.Thread(target=self._wait_for_index, args=(self._process, self.root), name="textgen-index",
                         daemon=True).start()

    def _wait_for_index(self, process: subprocess.Popen, root: Path) -> None:
        try:
            out, err = process.communicate(timeout=INDEX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            err = f"took more than {INDEX_TIMEOUT_S:.0f} s".encode()
        if self._closing:
            return
        if root != self.root:                             # another project (or none) is served now
            if self._index_again:
                self._index_again = False
                self._index()
            return
        if process.returncode == 0 and self._load_cache():
            self.from_cache = self.from_cache and index_summary(out).get("action") == "up to date"
            self.reason = None
        elif self._index_again:
            pass                                          # options changed meanwhile: the next run counts
        elif self.cached is None:
            lines = (err or out).decode("utf-8", "replace").strip().splitlines()
            self.state, self.reason = "failed", lines[-1] if lines else f"indexing exited with {process.returncode}"
        if self._index_again:
            self._index_again = False
            self._index()

    def _index_later(self) -> None:
        """Index again `REINDEX_DELAY_S` after the last write."""
        if self._reindex_timer is not None:
            self._reindex_timer.cancel()
        self._reindex_timer = threading.Timer(REINDEX_DELAY_S, self._index)
        self._reindex_timer.daemon = True
        self._reindex_timer.start()

    # -- the open buffers --------------------------------------------------------------------------
    def _count_buffers(self) -> None:
        """The buffers' n-gram, counted again each time they change (one count at a time)."""
        while True:
            self._buffers_changed.wait()
            if self._closing:
                return
            self._buffers_changed.clear()
            with self._lock:
                texts = list(self._texts.values())
            try:
                table = build_buffer_memory(texts)
            except Exception:                       # the thread must outlive any text
                log.exception("textgen: counting the open buffers failed")
                continue
            with self._lock:
                self._buffer_table = table
                self._buffer_bytes = min(sum(len(t) for t in texts), MAX_BUFFER_BYTES)
            self._publish()
            del table, texts
            give_back_freed()                       # what counting used, and the table replaced

    # -- to the engine -----------------------------------------------------------------------------
    def tables(self) -> Tables:
        tables = self.cached.tables() if self.cached is not None and self.options.enabled else []
        return tables + [(self._buffer_table, BUFFER_WEIGHTS)] if self._buffer_table is not None else tables

    def _publish(self) -> None:
        self._on_change(self.tables())


def index_summary(output: bytes) -> dict:
    """The JSON object `textgen index --json` printed last ({} if none)."""
    for text in reversed(output.decode("utf-8", "replace").strip().splitlines()):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        return value if isinstance(value, dict) else {}
    return {}
