"""The held-out part of training texts: how it is split off, the bits per character measured on it,
and the buffer-as-memory weights fitted on it.

Without TensorFlow, so that work on finished models (`averaging`) measures and fits exactly as
`training` does without loading it.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from textgen_core.memory import word_votes
from textgen_core.memory.match import MatchMixer, fit_weights, match_predictions
from textgen_core.memory.ngram import NgramModel, fit_ngram_weights
from textgen_core.model.config import ModelConfig, ModelInfo
from textgen_core.model.files import Weights
from textgen_core.model.numpy_gru import NumpyGRU
from textgen_core.model.probabilities import log_softmax
from textgen_core.model.text_model import TextModel
from textgen_core.model.vocab import to_ids

MAX_VAL_BYTES = 256 * 1024


@dataclass
class TrainingText:
    """One named training text (a file or a buffer) as bytes."""

    name: str
    data: bytes


def split_texts(texts: list[TrainingText], val_fraction: float,
                max_val_bytes: int = MAX_VAL_BYTES) -> tuple[bytes, bytes]:
    """Training bytes and validation bytes: the tail `val_fraction` of every text is held out.

    When that is more than `max_val_bytes`, every text keeps a proportional share of its tail in the
    validation set (so it still represents all of them); the rest of the tails is not trained on.
    """
    train_parts, val_parts = [], []
    for text in texts:
        cut = training_length(len(text.data), val_fraction)
        train_parts.append(text.data[:cut])
        val_parts.append(text.data[cut:])
    total = sum(len(p) for p in val_parts)
    if total > max_val_bytes:
        val_parts = [p[:max(1, len(p) * max_val_bytes // total)] for p in val_parts]
    return b"\n".join(train_parts), b"\n".join(val_parts)


def spread_sample(texts: list[TrainingText], val_fraction: float, max_bytes: int = 65536,
                  per_text: int = 4096) -> bytes:
    """Held-out tails to fit mixing weights on, from texts spread over the whole list rather than the
    first ones (`split_texts`' tails begin with the first texts': with the default model's corpus
    first, its first 64 KB are Python alone): the tails of texts taken at even steps through the list,
    at most `per_text` bytes of each (long enough for the match model's repeats), `max_bytes` in all."""
    tails = [text.data[training_length(len(text.data), val_fraction):][:per_text] for text in texts]
    tails = [tail for tail in tails if tail]
    if not tails:
        return b""
    average = sum(len(t) for t in tails) / len(tails)
    wanted = min(len(tails), max(1, math.ceil(max_bytes / average)))
    chosen = [tails[i * len(tails) // wanted] for i in range(wanted)]
    return b"\n".join(chosen)[:max_bytes]


def training_length(size: int, val_fraction: float) -> int:
    """How many bytes at the start of a text of `size` bytes are trained on (or counted): all but its
    tail `val_fraction`, at least one byte held out."""
    return size - max(1, int(size * val_fraction))


def corpus_summary(texts: list[TrainingText]) -> dict[str, Any]:
    """What a model was trained on: names, sizes and the sha256 of the concatenation."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.data)
    files = [{"name": t.name, "bytes": len(t.data)} for t in texts]
    return {"files": files[:200], "file_count": len(files), "bytes": sum(len(t.data) for t in texts),
            "sha256": digest.hexdigest()}


def windowed_val_bpc(config: ModelConfig, weights: Weights, val_bytes: bytes, seq_len: int = 128) -> float:
    """Bits per character on `val_bytes` measured as training measures its val bpc: consecutive
    `seq_len`-byte windows, each read from a zero state (so the figure compares with `train`'s)."""
    ids = to_ids(val_bytes)
    count = (len(ids) - 1) // seq_len
    if count < 1:
        raise ValueError(f"{len(val_bytes)} held-out bytes is too little to measure windows of {seq_len}")
    inputs = ids[:count * seq_len].reshape(count, seq_len)            # (N, T)
    targets = ids[1:count * seq_len + 1].reshape(count, seq_len)      # (N, T)
    gru = NumpyGRU(config, weights)
    state = gru.zero_state(count)
    nats = 0.0
    for t in range(seq_len):
        logits, state = gru.step(inputs[:, t], state)                  # (N, 256)
        nats -= log_softmax(logits.astype(np.float64))[np.arange(count), targets[:, t]].sum()
    return nats / (count * seq_len) / math.log(2.0)


def fit_match_weights(info: ModelInfo, weights: Weights, val_bytes: bytes, max_bytes: int = 65536,
                      ngram: NgramModel | None = None, probs: np.ndarray | None = None) -> dict[str, Any]:
    """Learn the mixing weights on held-out text (the GRU has not seen it, nor has the n-gram): the
    match model's on the GRU's probabilities, then the word votes' on those mixed. With a corpus
    `ngram`, a second set under "with_ngram": the n-gram's on the GRU's, then the match model's and
    the votes' on those; the first set serves where the table is missing (not built yet). `probs`:
    the GRU's `target_probs` of the sample (b"\\n" + val_bytes[:max_bytes]) where the caller has them."""
    sample = b"\n" + val_bytes[:max_bytes]
    if probs is None:
        probs = TextModel(info, weights, use_match=False).target_probs(sample)
    fitted = _fit_buffer_weights(sample, probs)
    if ngram is not None:
        ngram_weights = fit_ngram_weights(ngram, probs, sample)
        with_ngram = MatchMixer(ngram=ngram, ngram_weights=ngram_weights).mix_ngram_targets(sample, probs)
        fitted["with_ngram"] = {"ngram_weights": list(ngram_weights), **_fit_buffer_weights(sample, with_ngram)}
    return {**fitted, "fitted_on_bytes": len(sample) - 1}


def _fit_buffer_weights(sample: bytes, probs: np.ndarray) -> dict[str, Any]:
    """The match model's weights on `probs` (of sample[1:]), then the word votes' on those mixed."""
    fitted = fit_weights(sample, probs)
    with_match = MatchMixer(fitted).mix_match_targets(sample, probs)
    voted, buckets = word_votes.target_votes(sample, match_predictions(sample)[0] >= 0)
    word_weights = word_votes.fit_weights(with_match, voted, buckets)
    mixed = word_votes.mix_target_votes(with_match, voted, buckets, word_weights)
    return {"weights": list(fitted), "word_weights": list(word_weights),
            "val_bpc_with_match": round(float(-np.log2(np.maximum(mixed, 1e-300)).mean()), 4)}
