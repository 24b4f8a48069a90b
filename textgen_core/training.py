"""Training the char-GRU with TensorFlow/Keras on one or more texts, and saving the model folder.

Random windows over the training bytes (tf.data), a held-out tail of every text for validation,
gradient clipping, early stopping on val bpc, an optional time budget, fine-tuning from a base model.
Only this module, `keras_model` and `tf_backend` import TensorFlow; the editor never loads them.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .config import ModelConfig, ModelInfo
from .machine import machine_summary
from .keras_model import build_keras_model, weights_from_keras, weights_to_keras
from .modelfile import Weights, load_model_folder, save_model_folder
from .progress import ProgressReporter, SilentReporter
from .registry import resolve_model_path

LN2 = math.log(2.0)
MIN_TRAIN_BYTES = 256
MAX_VAL_BYTES = 256 * 1024


class TrainingDataError(ValueError):
    """The given text cannot be trained on (too small, binary); the message says what is needed."""


@dataclass
class TrainOptions:
    """Hyperparameters; saved into the model folder's config.json."""

    seq_len: int = 128
    batch_size: int = 64
    epochs: int = 10
    steps_per_epoch: int | None = None   # None: one pass over the training bytes, capped at 500 steps
    learning_rate: float = 2e-3
    clipnorm: float = 1.0
    val_fraction: float = 0.1
    patience: int = 3
    max_minutes: float | None = None
    seed: int = 0
    jit_compile: bool = False


@dataclass
class TrainingText:
    """One named training text (a file or a buffer) as bytes."""

    name: str
    data: bytes


@dataclass
class TrainResult:
    folder: Path
    info: ModelInfo
    stop_reason: str
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def split_texts(texts: list[TrainingText], val_fraction: float,
                max_val_bytes: int = MAX_VAL_BYTES) -> tuple[bytes, bytes]:
    """Training bytes and validation bytes: the tail `val_fraction` of every text is held out.

    When that is more than `max_val_bytes`, every text keeps a proportional share of its tail in the
    validation set (so it still represents all of them); the rest of the tails is not trained on.
    """
    train_parts, val_parts = [], []
    for text in texts:
        cut = len(text.data) - max(1, int(len(text.data) * val_fraction))
        train_parts.append(text.data[:cut])
        val_parts.append(text.data[cut:])
    total = sum(len(p) for p in val_parts)
    if total > max_val_bytes:
        val_parts = [p[:max(1, len(p) * max_val_bytes // total)] for p in val_parts]
    return b"\n".join(train_parts), b"\n".join(val_parts)


def corpus_summary(texts: list[TrainingText]) -> dict[str, Any]:
    """What a model was trained on: names, sizes and the sha256 of the concatenation."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.data)
    files = [{"name": t.name, "bytes": len(t.data)} for t in texts]
    return {"files": files[:200], "file_count": len(files), "bytes": sum(len(t.data) for t in texts),
            "sha256": digest.hexdigest()}


def train(texts: list[TrainingText], out: str | os.PathLike, config: ModelConfig | None = None,
          options: TrainOptions | None = None, base: str | os.PathLike | None = None,
          reporter: ProgressReporter | None = None, tensorboard: str | None = None) -> TrainResult:
    """Train (or fine-tune from `base`) on `texts` and write the model folder `out` atomically."""
    options = options or TrainOptions()
    reporter = reporter or SilentReporter()
    started = time.monotonic()
    ensure_writable_parent(out)
    keras.utils.set_random_seed(options.seed)

    train_bytes, val_bytes = split_texts(texts, options.val_fraction)
    if len(train_bytes) + len(val_bytes) < MIN_TRAIN_BYTES:
        raise TrainingDataError(
            f"{len(train_bytes) + len(val_bytes)} bytes is too little text to train on; "
            f"give at least {MIN_TRAIN_BYTES} bytes (a few KB or more helps)")
    seq_len = max(8, min(options.seq_len, len(train_bytes) // 2, len(val_bytes) - 1))
    if len(val_bytes) - 1 < 8:
        raise TrainingDataError("the held-out part is too small; give more text")

    base_name = None
    if base is not None:
        base_path = resolve_model_path(str(base))
        base_info, base_weights = load_model_folder(base_path)
        config = base_info.config
        base_name = base_info.training.get("name") or str(base_path)
    else:
        config = config or ModelConfig()
        base_weights = None

    model = build_keras_model(config)
    if base_weights is not None:
        weights_to_keras(model, config, base_weights)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=options.learning_rate, clipnorm=options.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=options.jit_compile,
    )

    train_ds = _random_windows(train_bytes, seq_len, options.batch_size, options.seed)
    val_ds = _val_windows(val_bytes, seq_len, options.batch_size)
    windows_per_pass = max(1, len(train_bytes) // (seq_len * options.batch_size))
    steps_per_epoch = options.steps_per_epoch or min(windows_per_pass, 500)
    initial_val_bpc = float(model.evaluate(val_ds, verbose=0)) / LN2

    reporter.emit({"event": "start", "parameters": config.parameter_count(), "architecture": config.to_dict(),
                   "train_bytes": len(train_bytes), "val_bytes": len(val_bytes), "seq_len": seq_len,
                   "steps_per_epoch": steps_per_epoch, "epochs": options.epochs, "base": base_name,
                   "initial_val_bpc": initial_val_bpc})

    progress = _ProgressCallback(reporter, options, config, steps_per_epoch, seq_len, started)
    callbacks = [progress, keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience)]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=tensorboard, update_freq=50))
    model.fit(train_ds, validation_data=val_ds, epochs=options.epochs, steps_per_epoch=steps_per_epoch,
              callbacks=callbacks, verbose=0, shuffle=False)

    weights: Weights = progress.best_weights or weights_from_keras(model, config)
    val_bpc = progress.best_val_bpc if progress.best_weights else float(model.evaluate(val_ds, verbose=0)) / LN2
    seconds = time.monotonic() - started
    stop_reason = progress.stop_reason or ("early stopping" if progress.epochs_done < options.epochs else "epochs done")
    info = ModelInfo(
        config=config,
        training={
            "corpus": corpus_summary(texts),
            "base": base_name,
            "options": asdict(options) | {"seq_len": seq_len, "steps_per_epoch": steps_per_epoch},
            "steps": progress.steps,
            "epochs": progress.epochs_done,
            "seconds": round(seconds, 2),
            "machine": machine_summary(),
            "stop_reason": stop_reason,
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        metrics={"val_bpc": round(val_bpc, 4), "initial_val_bpc": round(initial_val_bpc, 4),
                 "train_bpc": round(progress.last_loss / LN2, 4) if progress.last_loss else None},
    )
    info.match = fit_match_weights(info, weights, val_bytes)
    info.metrics["val_bpc_with_match"] = info.match.get("val_bpc_with_match")
    folder = save_model_folder(out, info, weights)
    reporter.emit({"event": "done", "out": str(folder), "val_bpc": val_bpc, "initial_val_bpc": initial_val_bpc,
                   "seconds": seconds, "steps": progress.steps, "stop_reason": stop_reason})
    return TrainResult(folder=folder, info=info, stop_reason=stop_reason, seconds=seconds,
                       history=progress.history)


def fit_match_weights(info: ModelInfo, weights: Weights, val_bytes: bytes, max_bytes: int = 65536) -> dict[str, Any]:
    """Learn the match model's mixing weights on held-out text (the GRU has not seen it either)."""
    from .match import MatchMixer, fit_weights
    from .model import TextModel

    sample = b"\n" + val_bytes[:max_bytes]
    model = TextModel(info, weights, use_match=False)
    probs = model.target_probs(sample)
    fitted = fit_weights(sample, probs)
    mixed = MatchMixer(fitted).mix_targets(sample, probs)
    return {"weights": list(fitted), "fitted_on_bytes": len(sample) - 1,
            "val_bpc_with_match": round(float(-np.log2(np.maximum(mixed, 1e-300)).mean()), 4)}


def ensure_writable_parent(out: str | os.PathLike) -> None:
    """Fail before training, not after it, when the model folder cannot be written."""
    parent = Path(out).expanduser().resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    probe = tempfile.mkdtemp(prefix=".textgen-probe-", dir=parent)
    os.rmdir(probe)


def _random_windows(data: bytes, seq_len: int, batch_size: int, seed: int):
    """Endless shuffled batches of (input, target) windows at random offsets: (B, T) int32 each."""
    tensor = tf.constant(np.frombuffer(data, dtype=np.uint8))
    last_start = len(data) - seq_len - 1

    def window(r):
        start = tf.cast(r % tf.cast(last_start + 1, tf.int64), tf.int32)
        chunk = tf.cast(tensor[start:start + seq_len + 1], tf.int32)          # (T + 1,)
        return chunk[:-1], chunk[1:]

    return (tf.data.Dataset.random(seed=seed).map(window, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def _val_windows(data: bytes, seq_len: int, batch_size: int):
    """Consecutive non-overlapping windows over the held-out bytes, in order: deterministic val bpc."""
    ids = np.frombuffer(data, dtype=np.uint8).astype(np.int32)
    count = max(1, (len(ids) - 1) // seq_len)
    x = np.stack([ids[i * seq_len:(i + 1) * seq_len] for i in range(count)])          # (N, T)
    y = np.stack([ids[i * seq_len + 1:(i + 1) * seq_len + 1] for i in range(count)])  # (N, T)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


class _ProgressCallback(keras.callbacks.Callback):
    """Reports progress, keeps the best weights by val bpc, and enforces the time budget."""

    def __init__(self, reporter: ProgressReporter, options: TrainOptions, config: ModelConfig,
                 steps_per_epoch: int, seq_len: int, started: float) -> None:
        super().__init__()
        self.reporter = reporter
        self.options = options
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = steps_per_epoch * options.epochs
        self.bytes_per_step = seq_len * options.batch_size
        self.started = started
        self.fit_started = time.monotonic()
        self.deadline = started + options.max_minutes * 60 if options.max_minutes else None
        self.steps = 0
        self.epochs_done = 0
        self.last_loss: float | None = None
        self.best_val_bpc = math.inf
        self.best_weights: Weights | None = None
        self.stop_reason = ""
        self.history: list[dict[str, Any]] = []
        self._last_emit = 0.0
        self._last_val_bpc: float | None = None

    def _percent_and_eta(self) -> tuple[float, float | None]:
        now = time.monotonic()
        elapsed = now - self.fit_started
        by_steps = self.steps / self.total_steps
        fraction = by_steps
        if self.deadline is not None:
            fraction = max(by_steps, (now - self.started) / (self.deadline - self.started))
        fraction = min(fraction, 1.0)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        return 100 * fraction, eta

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])
        now = time.monotonic()
        if now - self._last_emit >= 0.5 or self.steps == 1:
            self._last_emit = now
            percent, eta = self._percent_and_eta()
            elapsed = max(now - self.fit_started, 1e-9)
            self.reporter.emit({"event": "progress", "step": self.steps, "total_steps": self.total_steps,
                                "epoch": self.epochs_done + 1, "loss": self.last_loss,
                                "bpc": (self.last_loss or 0) / LN2, "val_bpc": self._last_val_bpc,
                                "bytes_per_s": self.steps * self.bytes_per_step / elapsed,
                                "percent": round(percent, 1), "eta_s": eta})
        if self.deadline is not None and now >= self.deadline:
            self.stop_reason = "time budget"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        logs = logs or {}
        val_bpc = float(logs.get("val_loss", math.nan)) / LN2
        self._last_val_bpc = val_bpc
        if val_bpc < self.best_val_bpc:
            self.best_val_bpc = val_bpc
            self.best_weights = weights_from_keras(self.model, self.config)
        percent, eta = self._percent_and_eta()
        elapsed = max(time.monotonic() - self.fit_started, 1e-9)
        event = {"event": "epoch", "epoch": self.epochs_done, "step": self.steps, "loss": self.last_loss,
                 "val_bpc": val_bpc, "best_val_bpc": self.best_val_bpc,
                 "bytes_per_s": self.steps * self.bytes_per_step / elapsed,
                 "percent": round(percent, 1), "eta_s": eta}
        self.history.append(event)
        self.reporter.emit(event)
