"""The project as memory: an n-gram of the text of the project's files, mixed in after the corpus n-gram.

The names, idioms and phrases a person types next are mostly already written somewhere else in
their project. The model reads 4 KB before the cursor and the match model 64 KB; this counts what
every text file of the project (`project_files`) says after the same last 1–16 bytes, the way the
corpus n-gram counts the training text (`ngram`), and the mixer (`match.MatchMixer`) mixes it in
with a weight per longest context found.

The weights are fitted on the project itself: the n-gram is counted on the files' heads, the GRU
(with the corpus n-gram) scores their tails, and each bucket's weight is the one that predicts the
tails best; then the whole text is counted. So they suit a project the model never saw.
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
# The part of each file held back from the counts while fitting.
TAIL_SHARE = 0.1
# Below this much text the fit has too few positions per bucket: the default weights serve.
MIN_FIT_BYTES = 2048
# Before (or without) a fit, per bucket (no context, then orders 1, 2, 3, 4, 6, 8, 12, 16): a
# project's long contexts are its own names and phrases, trusted far more than short ones.
DEFAULT_PROJECT_WEIGHTS = (0.02, 0.02, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 0.75)
SEPARATOR = b"\n\n"


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
        except OSError:
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
    ngram = build_ngram(SEPARATOR.join(texts), min_count=PROJECT_MIN_COUNT)
    return ProjectMemory(Path(files.root), files, ngram, weights or DEFAULT_PROJECT_WEIGHTS, fitted_on,
                         time.perf_counter() - started)


def _fitted_weights(model: TextModel, texts: list[bytes]) -> tuple[tuple[float, ...] | None, int]:
    """Weights fitted on the files' tails with the n-gram of their heads: what the project's n-gram
    adds to the GRU and the corpus n-gram on text it has not counted."""
    heads, tails = [], []
    for text in texts:
        cut = len(text) - int(len(text) * TAIL_SHARE)
        heads.append(text[:cut])
        tails.append(text[cut:])
    sample = SEPARATOR.join(tails)
    if len(sample) > FIT_BYTES:                               # an even spread of the tails, not the first files'
        step = len(tails) / max(1, round(len(tails) * FIT_BYTES / len(sample)))
        picked = [tails[int(i * step)] for i in range(int(len(tails) / step))]
        sample = SEPARATOR.join(picked)[:FIT_BYTES]
    if len(sample) < MIN_FIT_BYTES:
        return None, 0
    sample = b"\n" + sample
    head_ngram = build_ngram(SEPARATOR.join(heads), min_count=PROJECT_MIN_COUNT)
    probs = model.target_probs(sample)
    if model.mixer is not None:                               # the corpus n-gram first, as when serving
        probs = model.mixer.with_project(None).mix_ngram_targets(sample, probs)
    return fit_ngram_weights(head_ngram, probs, sample, DEFAULT_PROJECT_WEIGHTS), len(sample) - 1
