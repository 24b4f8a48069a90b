"""Training the char-GRU with TensorFlow/Keras on one or more texts, and saving the model folder.

Random windows over the training bytes (tf.data), a held-out tail of every text for validation,
gradient clipping, early stopping on val bpc, an optional time budget, fine-tuning from a base model.
Texts are held in memory; files given as `TrainingFile`s are streamed instead (`streaming`), and the
same `fit` runs on several GPUs or machines (`distributed`).
Only this module, `keras_model`, `streaming`, `distributed` and `tf_backend` import TensorFlow; the
editor never loads them.
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from textgen_core.memory import corpus_ngram
from textgen_core.memory.ngram import NgramModel
from textgen_core.memory.project_cache import default_cache_dir
from textgen_core.model.config import ModelConfig, ModelInfo
from textgen_core.model.files import (
    Weights,
    check_backup_target,
    check_save_target,
    load_model_folder,
    read_ngram,
    save_model_folder,
)
from textgen_core.model.probabilities import LN2
from textgen_core.model.registry import resolve_model_path
from textgen_core.train import streaming
from textgen_core.train.distributed import (
    WorkerBackup,
    adapt_model,
    any_worker,
    distribute,
    losing_a_worker_stops_training,
    make_placement,
    split_between_workers,
)
from textgen_core.train.held_out import MAX_VAL_BYTES, TrainingText, corpus_summary, fit_match_weights, split_texts
from textgen_core.train.keras_model import build_keras_model, weights_from_keras, weights_to_keras
from textgen_core.train.machine import cpu_has_bfloat16, machine_summary
from textgen_core.train.progress import ProgressReporter, SilentReporter

MIN_TRAIN_BYTES = 256


def _base_ngram(base_path: Path, base_info: ModelInfo) -> NgramModel | None:
    """The base model's corpus n-gram, carried over to the model trained from it: its folder's; else
    the one the editor counted into the cache (the light install ships the default model without it),
    or counted there now from the running Neovim's runtime (~12 s). None where it has none, or it
    cannot be counted (one line on stderr: the trained model then has no n-gram)."""
    ngram = read_ngram(base_path)
    if ngram is not None or not corpus_ngram.wants_corpus_ngram(base_info):
        return ngram
    try:
        counted = corpus_ngram.count_corpus_ngram(base_path, default_cache_dir(), corpus_ngram.editor_runtime())
        return counted.table.ngram
    except (corpus_ngram.CorpusNgramError, OSError, MemoryError) as exc:
        print(f"textgen: training without {base_path.name}'s corpus n-gram: {exc}", file=sys.stderr)
        return None


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
    gru: str = "auto"             # "fused" (fused_gru, CPU), "keras" (keras.layers.GRU: cuDNN on a GPU), "auto"
    # Of the fused GRU's products: "float32", "bfloat16", "auto" (bf16 where the CPU has it).
    precision: str = "auto"


@dataclass
class TrainResult:
    folder: Path | None          # None on a worker that is not the chief: it writes no model
    info: ModelInfo
    stop_reason: str
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def train(texts: Sequence[TrainingText] | Sequence[streaming.TrainingFile], out: str | os.PathLike,
          config: ModelConfig | None = None, options: TrainOptions | None = None,
          base: str | os.PathLike | None = None, reporter: ProgressReporter | None = None,
          tensorboard: str | None = None, strategy: str = "default", backup_dir: str | None = None) -> TrainResult:
    """Train (or fine-tune from `base`) on `texts` and write the model folder `out` atomically.

    `texts` are held in memory, or streamed when they are `TrainingFile`s. Under a `strategy` of
    several workers only the chief writes `out`. With `backup_dir`, a backup written after every epoch
    lets a killed run, started again with the same arguments, resume from its last epoch (and its
    time budget and reported training time go on from there).
    """
    options = options or TrainOptions()
    reporter = reporter or SilentReporter()
    started = time.monotonic()
    placement = make_placement(strategy)      # first: the multi-worker runtime must start before other TF ops
    if placement.is_chief:
        check_save_target(out)
        ensure_writable_parent(out)
    if backup_dir:
        check_backup_target(backup_dir)
    keras.utils.set_random_seed(options.seed)

    corpus = _StreamedFiles(texts, options) if _are_files(texts) else _TextsInMemory(texts, options)
    seq_len = corpus.seq_len
    global_batch = options.batch_size * placement.replicas

    base_name, base_ngram, base_ngram_info = None, None, {}
    if base is not None:
        base_path = resolve_model_path(str(base))
        base_info, base_weights = load_model_folder(base_path)
        base_ngram, base_ngram_info = _base_ngram(base_path, base_info), base_info.ngram   # carried over, refitted
        config = base_info.config
        base_name = base_info.training.get("name") or str(base_path)
    else:
        config = config or ModelConfig()
        base_weights = None

    kernel = choose_kernel(replace(options, seq_len=seq_len), config)
    with placement.strategy.scope():
        model = build_keras_model(config, fused=kernel["gru"] == "fused", matmul_dtype=kernel["precision"])
        if base_weights is not None:
            weights_to_keras(model, config, base_weights)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=options.learning_rate, clipnorm=options.clipnorm),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=options.jit_compile,
        )
    adapt_model(model, placement)

    train_ds = distribute(placement, lambda context: corpus.train_windows(options.batch_size, options.seed, context))
    val_ds = split_between_workers(corpus.val_windows(global_batch))
    windows_per_pass = max(1, corpus.train_bytes // (seq_len * global_batch))
    steps_per_epoch = options.steps_per_epoch or min(windows_per_pass, 500)
    backup = WorkerBackup(backup_dir, placement, started) if backup_dir else None
    if backup is not None:
        started = backup.started               # the time budget counts the runs that this one resumes
    with placement.strategy.scope():
        initial_val_bpc = float(model.evaluate(val_ds, verbose=0)) / LN2

    reporter.emit({"event": "start", "parameters": config.parameter_count(), "architecture": config.to_dict(),
                   "train_bytes": corpus.train_bytes, "val_bytes": corpus.val_bytes, "seq_len": seq_len,
                   "steps_per_epoch": steps_per_epoch, "epochs": options.epochs, "base": base_name,
                   "initial_val_bpc": initial_val_bpc, "streamed": isinstance(corpus, _StreamedFiles),
                   **placement.summary(), "global_batch_size": global_batch, "kernel": kernel,
                   "resumed_from_epoch": backup.saved_epoch() if backup else 0,
                   "resumed_after_s": backup.seconds_before if backup else 0.0})

    stop_together = (lambda flag: any_worker(placement, flag)) if placement.workers > 1 else None
    progress = _ProgressCallback(reporter, options, config, steps_per_epoch, seq_len * global_batch, started,
                                 stop_together)
    callbacks = [backup] if backup else []     # first, so an epoch is reported only once it is backed up
    callbacks += [progress, keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience)]
    if tensorboard and placement.is_chief:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=tensorboard, update_freq=50))
    with placement.strategy.scope(), losing_a_worker_stops_training(placement, backup is not None):
        model.fit(train_ds, validation_data=val_ds, epochs=options.epochs, steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=0, shuffle=False)
        final_val_bpc = None if progress.best_weights else float(model.evaluate(val_ds, verbose=0)) / LN2

    weights: Weights = progress.best_weights or weights_from_keras(model, config)
    val_bpc = progress.best_val_bpc if progress.best_weights else final_val_bpc
    seconds = time.monotonic() - started
    stop_reason = progress.stop_reason or ("early stopping" if progress.epochs_done < options.epochs else "epochs done")
    info = ModelInfo(
        config=config,
        training={
            "corpus": corpus.summary() if placement.is_chief else None,
            "base": base_name,
            "options": asdict(options) | {"seq_len": seq_len, "steps_per_epoch": steps_per_epoch},
            "distribution": placement.summary() | {"global_batch_size": global_batch},
            "kernel": kernel,
            "steps": progress.steps,
            "epochs": progress.epochs_done,
            "seconds": round(seconds, 2),
            "step_seconds": round(progress.step_seconds, 2),
            "machine": machine_summary(),
            "stop_reason": stop_reason,
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        metrics={"val_bpc": round(val_bpc, 4), "initial_val_bpc": round(initial_val_bpc, 4),
                 "train_bpc": round(progress.last_loss / LN2, 4) if progress.last_loss else None},
    )
    folder = None
    if placement.is_chief:                     # the one writer of the model (the TF multi-worker guide's rule)
        info.match = fit_match_weights(info, weights, corpus.val_sample(65536), ngram=base_ngram)
        info.metrics["val_bpc_with_match"] = info.match.get("val_bpc_with_match")
        info.ngram = base_ngram_info if base_ngram is not None else {}
        folder = save_model_folder(out, info, weights, ngram=base_ngram)
    reporter.emit({"event": "done", "out": str(folder) if folder else None, "val_bpc": val_bpc,
                   "initial_val_bpc": initial_val_bpc, "seconds": seconds, "steps": progress.steps,
                   "stop_reason": stop_reason, "task": placement.task})
    return TrainResult(folder=folder, info=info, stop_reason=stop_reason, seconds=seconds,
                       history=progress.history)


def choose_kernel(options: TrainOptions, config: ModelConfig) -> dict[str, str]:
    """Which GRU layer trains, and the precision of its matrix products.

    On a CPU the fused layer (`fused_gru`: same function and weights, its own gradient, the layers
    as a wavefront) is faster than Keras' GRU, and bfloat16 products are faster still where the CPU
    has bfloat16 instructions (AMX or AVX-512 BF16; elsewhere they are emulated, and slower). On a
    GPU Keras' GRU runs on cuDNN. The wavefront needs sequences of at least one byte per layer.
    """
    if options.gru not in ("auto", "fused", "keras") or options.precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"unknown GRU kernel {options.gru!r} or precision {options.precision!r}")
    gru = options.gru
    if options.seq_len < config.layers:
        gru = "keras"
    elif gru == "auto":
        gru = "keras" if tf.config.list_logical_devices("GPU") else "fused"
    precision = options.precision
    if gru == "keras":
        precision = "float32"
    elif precision == "auto":
        precision = "bfloat16" if cpu_has_bfloat16() else "float32"
    return {"gru": gru, "precision": precision}


class _TextsInMemory:
    """Texts held in memory: random windows over their joined training bytes, every text's tail held out."""

    def __init__(self, texts: Sequence[TrainingText], options: TrainOptions) -> None:
        self.texts = list(texts)
        self.train, self.val = split_texts(self.texts, options.val_fraction)
        _check_enough_text(len(self.train) + len(self.val))
        self.train_bytes, self.val_bytes = len(self.train), len(self.val)
        self.seq_len = max(8, min(options.seq_len, len(self.train) // 2, len(self.val) - 1))
        if len(self.val) - 1 < 8:
            raise TrainingDataError("the held-out part is too small; give more text")

    def train_windows(self, batch_size: int, seed: int, context: tf.distribute.InputContext) -> tf.data.Dataset:
        return _random_windows(self.train, self.seq_len, batch_size, seed + context.input_pipeline_id)

    def val_windows(self, batch_size: int) -> tf.data.Dataset:
        return _val_windows(self.val, self.seq_len, batch_size)

    def val_sample(self, max_bytes: int) -> bytes:
        return self.val[:max_bytes]

    def summary(self) -> dict[str, Any]:
        return corpus_summary(self.texts)


class _StreamedFiles:
    """Files read while training (see `streaming`); whole files held out when there are enough of them."""

    def __init__(self, files: Sequence[streaming.TrainingFile], options: TrainOptions) -> None:
        self.files = list(files)
        self.train, self.val = streaming.split_files(self.files, options.val_fraction)
        _check_enough_text(sum(f.size for f in self.files))
        self.train_bytes = sum(r.length for r in self.train)
        self.val_bytes = streaming.held_out_bytes(self.val, MAX_VAL_BYTES)
        self.seq_len = max(8, min(options.seq_len, self.train_bytes // 2, self.val_bytes - 1))
        window = self.seq_len + 1
        if not any(r.length >= window for r in self.train) or not any(r.length >= window for r in self.val):
            raise TrainingDataError(f"the files are too short to stream windows of {window} bytes; "
                                    f"give a smaller --seq-len or train without --stream")

    def train_windows(self, batch_size: int, seed: int, context: tf.distribute.InputContext) -> tf.data.Dataset:
        return streaming.train_windows(self.train, self.seq_len, batch_size, seed, context)

    def val_windows(self, batch_size: int) -> tf.data.Dataset:
        return streaming.val_windows(self.val, self.seq_len, batch_size, MAX_VAL_BYTES)

    def val_sample(self, max_bytes: int) -> bytes:
        return streaming.read_sample(self.val, max_bytes)

    def summary(self) -> dict[str, Any]:
        files = [{"name": f.name, "bytes": f.size} for f in self.files]
        return {"files": files[:200], "file_count": len(files), "bytes": sum(f.size for f in self.files),
                "sha256": streaming.sha256_of_files(self.files), "streamed": True}


def _are_files(texts: Sequence[Any]) -> bool:
    kinds = {isinstance(t, streaming.TrainingFile) for t in texts}
    if len(kinds) > 1:
        raise TypeError("give texts in memory or files to stream, not both")
    return kinds == {True}


def _check_enough_text(total: int) -> None:
    if total < MIN_TRAIN_BYTES:
        raise TrainingDataError(f"{total} bytes is too little text to train on; "
                                f"give at least {MIN_TRAIN_BYTES} bytes (a few KB or more helps)")


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
    """Reports progress, keeps the best weights by val bpc, and enforces the time budget.

    With several workers, `stop_together` makes the budget's decision a common one, taken at the end
    of an epoch (a worker that stopped alone would leave the others waiting for it).
    """

    def __init__(self, reporter: ProgressReporter, options: TrainOptions, config: ModelConfig,
                 steps_per_epoch: int, bytes_per_step: int, started: float,
                 stop_together: Callable[[bool], bool] | None = None) -> None:
        super().__init__()
        self.reporter = reporter
        self.options = options
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = steps_per_epoch * options.epochs
        self.bytes_per_step = bytes_per_step
        self.stop_together = stop_together
        self.resumed_steps = 0
        self.started = started
        self.fit_started = time.monotonic()
        self.deadline = started + options.max_minutes * 60 if options.max_minutes else None
        self.steps = 0
        self.step_seconds = 0.0          # inside training steps: no evaluation, saving or tracing of fit's loop
        self._step_started = 0.0
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
        fraction = self.steps / self.total_steps
        this_run = (self.steps - self.resumed_steps) / max(1, self.total_steps - self.resumed_steps)
        if self.deadline is not None:
            by_time = (now - self.started) / (self.deadline - self.started)
            fraction, this_run = max(fraction, by_time), max(this_run, by_time)
        fraction, this_run = min(fraction, 1.0), min(this_run, 1.0)
        eta = elapsed * (1 - this_run) / this_run if this_run > 0 else None
        return 100 * fraction, eta

    def on_epoch_begin(self, epoch, logs=None):
        if epoch > self.epochs_done:            # restored from a backup: count the epochs done before
            self.epochs_done = epoch
            self.steps = self.resumed_steps = epoch * self.steps_per_epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._step_started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])              # waits for the step to end
        now = time.monotonic()
        self.step_seconds += now - self._step_started
        if now - self._last_emit >= 0.5 or self.steps == self.resumed_steps + 1:
            self._last_emit = now
            percent, eta = self._percent_and_eta()
            self.reporter.emit({"event": "progress", "step": self.steps, "total_steps": self.total_steps,
                                "epoch": self.epochs_done + 1, "loss": self.last_loss,
                                "bpc": (self.last_loss or 0) / LN2, "val_bpc": self._last_val_bpc,
                                "bytes_per_s": self._bytes_per_s(now),
                                "percent": round(percent, 1), "eta_s": eta})
        if self.deadline is not None and self.stop_together is None and now >= self.deadline:
            self.stop_reason = "time budget"
            self.model.stop_training = True

    def _bytes_per_s(self, now: float) -> float:
        return (self.steps - self.resumed_steps) * self.bytes_per_step / max(now - self.fit_started, 1e-9)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        logs = logs or {}
        val_bpc = float(logs.get("val_loss", math.nan)) / LN2
        self._last_val_bpc = val_bpc
        if val_bpc < self.best_val_bpc:
            self.best_val_bpc = val_bpc
            self.best_weights = weights_from_keras(self.model, self.config)
        percent, eta = self._percent_and_eta()
        event = {"event": "epoch", "epoch": self.epochs_done, "step": self.steps, "loss": self.last_loss,
                 "val_bpc": val_bpc, "best_val_bpc": self.best_val_bpc,
                 "bytes_per_s": self._bytes_per_s(time.monotonic()),
                 "percent": round(percent, 1), "eta_s": eta}
        self.history.append(event)
        self.reporter.emit(event)
        if self.stop_together is not None:      # every worker votes after every epoch, budget or not
            if self.stop_together(self.deadline is not None and time.monotonic() >= self.deadline):
                self.stop_reason = "time budget"
                self.model.stop_training = True
