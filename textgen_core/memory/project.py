"""The project as memory: an n-gram of the text of the project's files, mixed in after the corpus n-gram.

The names, idioms and phrases a person types next are mostly already written somewhere else in
their project. The model reads 4 KB before the cursor and the match model 64 KB; this counts what
every text file of the project (`project_files`) says after the same last 1–16 bytes, the way the
corpus n-gram counts the training text (`ngram`), and the mixer (`match.MatchMixer`) mixes it in
with a weight per longest context found and how sure it is (`ngram.confidence_bucket`).

The weights are fitted on the project itself: the n-gram is counted without some of its files, the
GRU (with the corpus n-gram) scores those, and each bucket's weight is the one that predicts them
best; then the whole text is counted. So they suit a project the model never saw.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from textgen_core.memory.ngram import NgramModel, build_ngram, fit_ngram_weights
from textgen_core.memory.project_files import MAX_TOTAL_BYTES, ProjectFiles, find_project_files

if TYPE_CHECKING:
    from textgen_core.model.text_model import TextModel

# Contexts seen once count: a project's names mostly occur a few times, and a name's second use is
# the one worth suggesting.
PROJECT_MIN_COUNT = 1
# How much of the project's tails the weights are fitted on: the GRU reads every byte of it (about
# 0.1 ms a byte), so this bounds the fitting to a few seconds.
FIT_BYTES = 32768
# Below this much text the fit has too few positions per bucket: the default weights serve.
MIN_FIT_BYTES = 2048
# Before (or without) a fit, per bucket (`ngram.confidence_bucket`: no context, then orders 1, 2, 3,
# 4, 6, 8, 12, 16, each for several bytes seen after it, one byte seen once, one byte seen more often,
# each at a word's end and inside a word; then a context of blanks alone): the median of the weights
# fitted on the 14 projects of `bench/project.py` (3 files of each held out). A project's long, sure
# contexts inside a word are its own names, trusted far more than anything else.
DEFAULT_PROJECT_WEIGHTS = (0.02, 0.03, 0.06, 0.02, 0.02, 0.02, 0.02, 0.14, 0.17, 0.05, 0.05, 0.05, 0.05, 0.34,
                           0.24, 0.29, 0.17, 0.24, 0.39, 0.28, 0.35, 0.17, 0.31, 0.57, 0.57, 0.24, 0.35, 0.22,
                           0.5, 0.49, 0.77, 0.31, 0.42, 0.3, 0.6, 0.59, 0.84, 0.35, 0.53, 0.39, 0.74, 0.69, 0.88,
                           0.7, 0.82, 0.58, 0.83, 0.88, 0.97, 0.14)
SEPARATOR = b"\n\n"
# A project's sure contexts inside a name are right nearly always: their fitted weights reached the
# old bound, 0.95, on most projects, and every byte of a long name paid the 5 % (0.95^12 = 0.54).
MAX_WEIGHT = 0.99


@dataclass(frozen=True)
class ProjectMemory:
    """A project's n-gram, its mixing weights, and what it was built from."""

    root: Path
    files: ProjectFiles
    ngram: NgramModel
    weights: tuple[float, ...]
    fitted_on_bytes: int
    seconds: float

    def summary(self) -> dict:
        """What `:TextGenStatus` and the CLI say about it."""
        return {"root": str(self.root), "files": len(self.files.files), "bytes": self.files.total_bytes,
                "contexts": self.ngram.contexts, "skipped": dict(self.files.skipped),
                "fitted_on_bytes": self.fitted_on_bytes, "seconds": round(self.seconds, 2)}


def project_texts(files: ProjectFiles, leave_out: Sequence[bytes] = ()) -> list[bytes]:
    """The text of each file, in the files' order; files whose bytes equal one of `leave_out` (the
    text being predicted, and its copies) are left out."""
    unwanted = {hashlib.sha256(text).digest() for text in leave_out}
    texts = []
    for file in files.files:
        try:
            data = files.read(file)
        except (OSError, ValueError):          # gone, or no longer a regular file within its bound
            continue
        if hashlib.sha256(data).digest() not in unwanted:
            texts.append(data)
    return texts


def build_project_memory(root: str | Path, model: TextModel | None = None, *, exclude: Sequence[str] = (),
                         max_total_bytes: int = MAX_TOTAL_BYTES, leave_out: Sequence[bytes] = (),
                         files: ProjectFiles | None = None) -> ProjectMemory:
    """Find the project's text files under `root`, count them, and fit the mixing weights with
    `model` (its GRU and corpus n-gram); without a model, or with too little text, the defaults."""
    started = time.perf_counter()
    files = files if files is not None else find_project_files(root, exclude=exclude, max_total_bytes=max_total_bytes)
    texts = project_texts(files, leave_out)
    weights, fitted_on = None, 0
    if model is not None:
        weights, fitted_on = _fitted_weights(model, texts)
    ngram = build_ngram(SEPARATOR.join(texts), min_count=PROJECT_MIN_COUNT, by_confidence=True)
    return ProjectMemory(Path(files.root), files, ngram, weights or DEFAULT_PROJECT_WEIGHTS, fitted_on,
                         time.perf_counter() - started)


def _fitted_weights(model: TextModel, texts: list[bytes]) -> tuple[tuple[float, ...] | None, int]:
    """Weights fitted on whole files held out of the counts (every k-th file, `FIT_BYTES` of them in
    all): what the project's n-gram adds to the GRU and the corpus n-gram on a file it has not
    counted, as when a new file is written. (Fitted on the tails of counted files, the weights trusted
    the table too much: the file's own head predicts its tail far better than other files do, and
    held-out bits per character rose on Lua and help files.)"""
    total = sum(len(t) for t in texts)
    if total < 2 * MIN_FIT_BYTES or len(texts) < 2:
        return None, 0
    every = max(2, round(total / FIT_BYTES))
    held = [i for i in range(len(texts)) if i % every == every // 2]
    sample = SEPARATOR.join(texts[i] for i in held)[:FIT_BYTES]
    if len(sample) < MIN_FIT_BYTES:
        return None, 0
    counted = SEPARATOR.join(t for i, t in enumerate(texts) if i % every != every // 2)
    if len(counted) < 2 * MIN_FIT_BYTES:         # too little left to count: any fit would be noise
        return None, 0
    sample = b"\n" + sample
    probs = model.target_probs(sample)
    if model.mixer is not None:                               # the corpus n-gram first, as when serving
        probs = model.mixer.with_memories(()).mix_ngram_targets(sample, probs)
    fitted = fit_ngram_weights(build_ngram(counted, min_count=PROJECT_MIN_COUNT, by_confidence=True), probs, sample,
                               DEFAULT_PROJECT_WEIGHTS, max_weight=MAX_WEIGHT)
    return fitted, len(sample) - 1
