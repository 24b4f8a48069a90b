"""The corpus n-gram of the model the editor serves, where the model's folder has none
(`memory.corpus_ngram`): mapped from the cache at once if it was counted before; else counted by
`textgen corpus-ngram` in a process of its own, at low priority, while the model serves without it,
and handed over when it is ready (`on_counted`).

- The count never runs in the host: its ~300 MB and 15 s of CPU stay out of the editor's process,
  whose memory stays flat (the table is mapped, as a model folder's is).
- The count is left to finish when the editor exits (a session of its own, so that Neovim's stop
  of the host's process group does not end it): the next start then maps the table. A second
  count of the same table waits for the first (`corpus_ngram`'s lock) and finds it.
- A count that fails is reported (`status`), and not started again: the child records its failure
  in the cache (the host does so for a child killed by a signal, e.g. for lack of memory), so that
  later starts do not count again either; `retry_command` counts it by hand.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from textgen_core.memory.corpus_ngram import (
    NO_RUNTIME,
    CorpusNgramError,
    editor_runtime,
    load_cached,
    model_key,
    record_failure,
    recorded_failure,
    wants_corpus_ngram,
)
from textgen_core.memory.ngram import NgramModel
from textgen_core.memory.project_cache import default_cache_dir
from textgen_core.model.text_model import TextModel
from textgen_core.serve.child_python import module_command

log = logging.getLogger("textgen")

COUNT_NICE = 10
ROOT = Path(__file__).resolve().parents[2]          # where textgen_core lives, for the child's PYTHONPATH


class CorpusCount:
    """The corpus n-gram of the model being served: where it comes from, and the count in the
    background. `on_counted(model, table)` gets the model that `attach` served without its table, and
    the table, once counted (on a thread of its own)."""

    def __init__(self, on_counted: Callable[[TextModel, NgramModel], None], cache_dir: str | None = None,
                 runtime: str | None = None, python: str = sys.executable) -> None:
        self._on_counted = on_counted
        self.cache_dir = cache_dir or str(default_cache_dir())
        self.runtime = runtime or editor_runtime()
        self._python = python
        self._lock = threading.Lock()
        self._model: TextModel | None = None
        self._key: str | None = None
        self.state = "none"          # none, folder, cache, counting, failed
        self.reason: str | None = None
        self.started_at: float | None = None
        self.summary: dict[str, Any] = {}
        self._process: subprocess.Popen | None = None
        self._process_key: str | None = None
        self._process_started: float | None = None

    def attach(self, model: TextModel) -> TextModel:
        """The model to serve: with its table from the cache where the model's folder has none and the
        cache has one; else `model` as it is, and the count started in the background if it was not
        counted before (nor failed)."""
        with self._lock:
            self._model, self._key, self.reason, self.started_at, self.summary = model, None, None, None, {}
            if model.ngram is not None:
                self.state = "folder"
                return model
            if model.path is None or not wants_corpus_ngram(model.info):
                self.state = "none"
                return model
            try:
                self._key = model_key(model.path)
            except OSError as exc:
                return self._failed(f"cannot read the model's files ({exc.strerror or exc})")
            try:
                cached = load_cached(self.cache_dir, self._key)
            except CorpusNgramError as exc:
                log.warning("textgen: %s; counting it again", exc)
                cached = None
            if cached is not None:
                self.state, self.summary = "cache", cached.summary()
                return model.with_corpus_ngram(cached.ngram)
            failure = recorded_failure(self.cache_dir, self._key)
            if failure is not None:
                return self._failed(failure["reason"])
            self._start()
            return model

    def _failed(self, reason: str) -> TextModel:
        self.state, self.reason = "failed", reason
        return self._model

    def _start(self) -> None:
        """Start `textgen corpus-ngram` for the attached model, unless one for it runs already."""
        if self._process is not None and self._process.poll() is None and self._process_key == self._key:
            self.state, self.started_at = "counting", self._process_started
            return
        if self.runtime is None:
            self._failed(NO_RUNTIME)
            return
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            command = module_command(self._python, "textgen_core", *self.arguments(), "--nice", str(COUNT_NICE),
                                     "--json")
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                       start_new_session=True)
        except OSError as exc:
            self._failed(f"could not start the count ({exc.strerror})")
            return
        self._process, self._process_key, self._process_started = process, self._key, time.time()
        self.state, self.started_at = "counting", self._process_started
        threading.Thread(target=self._wait, args=(process, self._key, self.started_at), name="textgen-corpus-ngram",
                         daemon=True).start()

    def arguments(self) -> list[str]:
        """The arguments of `textgen` that count the attached model's table."""
        model = self._model
        return ["corpus-ngram", str(model.path if model else ""), "--runtime", str(self.runtime),
                "--cache-dir", self.cache_dir]

    def retry_command(self) -> str:
        """The attached model's count as a shell command a user can run."""
        return " ".join(shlex.quote(part) for part in [self._python, "-m", "textgen_core", *self.arguments()])

    def _wait(self, process: subprocess.Popen, key: str, started_at: float) -> None:
        """Wait for the count (it takes as long as it takes: it is useful even if the editor exits
        first), then hand the table over, or say why not."""
        _, err = process.communicate()
        table = reason = None
        if process.returncode == 0:
            try:
                table = load_cached(self.cache_dir, key)
                reason = None if table is not None else "the count wrote no table"
            except CorpusNgramError as exc:
                reason = str(exc)
        else:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            reason = lines[-1].removeprefix("textgen corpus-ngram: ") if lines else \
                f"the count exited with {process.returncode}"
            if process.returncode < 0:
                reason = f"the count was killed ({signal.Signals(-process.returncode).name}" + \
                         (", out of memory?)" if process.returncode == -signal.SIGKILL else ")")
                failure = recorded_failure(self.cache_dir, key)
                if failure is None or failure.get("at", 0) < started_at:
                    record_failure(self.cache_dir, key, reason)
        with self._lock:
            if key != self._key:
                return                                  # another model is served now
            model = self._model
            if table is None:
                self._failed(reason or "unknown")
                return
            self.state, self.summary = "cache", table.summary()
        self._on_counted(model, table.ngram)

    def status(self) -> dict[str, Any]:
        """Where the served model's corpus n-gram comes from, for :TextGenStatus and :checkhealth."""
        with self._lock:
            status: dict[str, Any] = {"state": self.state, **self.summary}
            if self.state == "counting" and self.started_at is not None:
                status.update(started_at=time.strftime("%H:%M:%S", time.localtime(self.started_at)),
                              elapsed_s=round(time.time() - self.started_at))
            if self.state == "failed":
                status.update(reason=self.reason, retry=self.retry_command() if self._key else None)
            return status
