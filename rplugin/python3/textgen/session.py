"""The model and the engine this Neovim completes with: loaded on first use, switched by :TextGenModel.

A model that cannot be loaded is remembered with its reason, so the user hears it once and the
plugin stays quiet (and harmless) until the configuration names another model. A model whose corpus
n-gram is not in its folder gets it from the cache, or counted in the background (`CorpusCount`).
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _make_core_importable() -> None:
    """Use the plugin's own checkout of textgen_core when the host's Python has none installed."""
    try:
        import textgen_core  # noqa: F401
    except ImportError:
        root = str(Path(__file__).resolve().parents[3])
        if root not in sys.path:
            sys.path.append(root)


_make_core_importable()

from textgen_core import ModelFileError, ModelNotFoundError, TextModel, load_model  # noqa: E402
from textgen_core.memory.ngram import NgramModel  # noqa: E402
from textgen_core.model.registry import resolve_model_path  # noqa: E402
from textgen_core.model.text_model import fitted_kinds, serves_kind  # noqa: E402
from textgen_core.serve.corpus_count import CorpusCount  # noqa: E402
from textgen_core.serve.engine import Engine  # noqa: E402
from textgen_core.serve.heap import bound_heap  # noqa: E402
from textgen_core.serve.memories import Memories, Tables  # noqa: E402

from .suggestion_request import MAX_CONTEXT_BYTES  # noqa: E402


@dataclass(frozen=True)
class ModelChoice:
    """A model as the user names it (a name or a folder) and the backend to run it on."""

    name: str
    backend: str


class ModelSession:
    """Owns the loaded model and the one Engine; remembers why a choice failed."""

    def __init__(self) -> None:
        bound_heap()                              # a host that runs for days: freed memory goes back
        self.choice: ModelChoice | None = None
        self.engine: Engine | None = None
        self.failures: dict[ModelChoice, str] = {}
        self.reload_failure: str | None = None     # the model in use no longer loads from its folder
        self._tables: Tables = []
        self.memories = Memories(self._set_memories, lambda: self.choice.name if self.choice else "default")
        self._serving = threading.Lock()          # the model served changes on this thread and the count's
        self.corpus = CorpusCount(self._corpus_counted)

    def _set_memories(self, tables: Tables) -> None:
        """The project's and the open buffers' n-grams changed (`Memories`, on its threads)."""
        self._tables = tables
        if self.engine is not None:
            self.engine.set_memories(tables)

    def engine_for(self, choice: ModelChoice) -> Engine | None:
        """The engine serving `choice`, loading it if needed; None if it failed (see `failures`)."""
        if self.engine is not None and self.choice == choice:
            return self.engine
        if choice in self.failures:
            return None
        return self.engine if self.load(choice) is None else None

    def load(self, choice: ModelChoice) -> str | None:
        """Load `choice` and serve from it; returns why it failed, in one sentence, or None."""
        try:
            model = load_model(choice.name, backend=choice.backend, corpus_cache=False)   # CorpusCount attaches it
        except (ModelNotFoundError, ModelFileError) as exc:
            return self._failed(choice, _as_given(str(exc), choice.name))
        except ValueError as exc:
            return self._failed(choice, str(exc))
        except ImportError as exc:
            return self._failed(choice, f"the {choice.backend} backend needs a module the Python host lacks "
                                        f"({exc}); set g:textgen.backend to 'numpy'")
        self.failures.pop(choice, None)
        self.reload_failure = None
        with self._serving:
            model = self.corpus.attach(model)
            if self.engine is None:
                # guesses (g:textgen.lookahead) are the requests lua/textgen/context.lua will send
                self.engine = Engine(model, context_bytes=MAX_CONTEXT_BYTES)
                self.engine.set_memories(self._tables)
            else:
                self.engine.set_model(model)
            self.choice = choice
        return None

    def _corpus_counted(self, model: TextModel, table: NgramModel) -> None:
        """The corpus n-gram of `model` was counted in the background: serve it with the table, if it
        is still the model served (the engine keeps its cached states and what it learned)."""
        with self._serving:
            if self.engine is not None and self.engine.model is model:
                self.engine.set_model(model.with_corpus_ngram(table))

    def _failed(self, choice: ModelChoice, reason: str) -> str:
        if choice == self.choice and self.engine is not None:
            self.reload_failure = reason       # the copy in memory goes on serving
        else:
            self.failures[choice] = reason
        return reason

    def serves(self, choice: ModelChoice) -> bool:
        """Whether `choice` is being served (from memory, even if its folder no longer loads)."""
        return self.engine is not None and self.choice == choice

    def cancel(self, buffer: int) -> None:
        if self.engine is not None:
            self.engine.cancel(buffer)

    def model_summary(self) -> dict[str, Any] | None:
        """What :TextGenStatus and the 'model loaded' message say about the current model."""
        if self.engine is None or self.choice is None:
            return None
        return {**describe_model(self.engine.model, self.choice), "ngram_source": self.corpus.status()}

    def status(self) -> dict[str, Any]:
        """Model, engine state and latencies, for :TextGenStatus and :checkhealth."""
        status: dict[str, Any] = {"python": sys.version.split()[0], "model": self.model_summary(),
                                  "tensorflow_imported": "tensorflow" in sys.modules,
                                  "failures": [{"name": c.name, "backend": c.backend, "reason": r}
                                               for c, r in self.failures.items()],
                                  "reload_failure": self.reload_failure, "memory": self.memories.status()}
        engine = self.engine
        if engine is not None:
            latencies = list(engine.latencies_ms)
            status["engine"] = {
                "alive": engine.alive,
                "pending": engine.pending_count(),
                "served": engine.served,
                "guessed": engine.guessed,
                "errors": engine.errors,
                "last_latency_ms": engine.last_latency_ms,
                "median_latency_ms": _median(latencies) if latencies else None,
                "learned_bytes": engine.learned_bytes,
                "learning": engine.learning,
                "last_kind": engine.last_kind,
            }
        return status

    def close(self) -> None:
        self.memories.close()
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def _as_given(reason: str, name: str) -> str:
    """A load error ("PATH: problem") with the model's folder written as the user named it: the name
    for a model found by name (`default/weights.npz: ...`), the path as sent for a folder. Not shorter:
    a path cut to its last names can name another folder (the Lua side writes `~` back)."""
    try:
        folder = str(resolve_model_path(name))
    except ModelNotFoundError:
        return reason
    if reason.startswith(folder + os.sep) or reason.startswith(folder + ":"):
        return name.rstrip(os.sep) + reason[len(folder):]
    return reason


def describe_model(model: TextModel, choice: ModelChoice) -> dict[str, Any]:
    """A model's name, place, size, quality and training data, as plain values for Lua."""
    info = model.info
    averaged = info.training.get("averaged") if isinstance(info.training.get("averaged"), list) else []
    corpus = info.training.get("fitted_on" if averaged else "corpus")     # an average: the text it was fitted to
    corpus = corpus if isinstance(corpus, dict) else {}
    files = [f.get("name") for f in corpus.get("files", []) if isinstance(f, dict)]
    return {
        "name": model.name,
        "choice": choice.name,
        "path": str(model.path) if model.path else None,
        "backend": choice.backend,
        "layers": info.config.layers,
        "hidden": info.config.hidden,
        "parameters": info.config.parameter_count(),
        "val_bpc": info.val_bpc,
        "training_bytes": corpus.get("bytes"),
        "training_files": files[:5],
        "training_file_count": corpus.get("file_count", len(files)),
        "trained_at": info.training.get("trained_at"),
        "base": info.training.get("base"),
        "averaged": len(averaged),
        "memory": True,                  # this host keeps project and open-buffer memory (TextGenHostBuffer)
        "mixing_kinds": sorted(kind for kind in fitted_kinds(info) if serves_kind(info, model.ngram, kind)),
        **_describe_ngram(model),
    }


def _describe_ngram(model: TextModel) -> dict[str, Any]:
    """The corpus n-gram's size and text, or that its table was not built (the model works without it)."""
    counted = model.info.ngram.get("corpus") if isinstance(model.info.ngram.get("corpus"), dict) else {}
    if model.ngram is not None:
        return {"ngram_contexts": model.ngram.contexts, "ngram_file_count": counted.get("file_count"),
                "ngram_bytes": counted.get("bytes")}
    return {"ngram_missing": bool(model.info.ngram)}


def _median(values: list[float]) -> float:
    """statistics.median, imported when :TextGenStatus asks: the module and its imports (fractions,
    decimal, random) are 4 ms of the host's start, before the first suggestion."""
    import statistics

    return statistics.median(values)
