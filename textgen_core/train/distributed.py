"""Training on several GPUs or machines with TensorFlow's own `tf.distribute`, around one `model.fit`.

`default` is TensorFlow's default strategy (one device: the GPU when there is one, else the CPU);
`mirrored` copies the model onto every local GPU; `multiworker` trains synchronously on several
machines that find each other through `TF_CONFIG`. Every worker runs the same program; only the
chief writes the model folder. The batch size asked for is per replica, so the global batch grows
with the number of replicas.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from textgen_core.model.files import remove_backup

STRATEGIES = ("default", "mirrored", "multiworker")


class WorkerLostError(RuntimeError):
    """Another worker stopped or cannot be reached: synchronous training cannot go on without it."""


@dataclass(frozen=True)
class Placement:
    """The strategy, and where this process stands in the cluster."""

    name: str
    strategy: tf.distribute.Strategy
    task: str           # "worker:0", "worker:1", "chief:0", ...; "local" without a cluster
    is_chief: bool
    workers: int

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def summary(self) -> dict:
        return {"strategy": self.name, "replicas": self.replicas, "workers": self.workers, "task": self.task}


def make_placement(name: str) -> Placement:
    """Create the strategy; call it before any other TensorFlow op (MultiWorkerMirroredStrategy needs that)."""
    if name == "default":
        return Placement(name, tf.distribute.get_strategy(), "local", True, 1)
    if name == "mirrored":
        return Placement(name, tf.distribute.MirroredStrategy(), "local", True, 1)
    if name != "multiworker":
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.task_type, resolver.task_id
    # The TF multi-worker guide's rule: the "chief" task if there is one, else worker 0.
    is_chief = task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) or 1
    return Placement(name, strategy, f"{task_type}:{task_id}" if task_type else "local", is_chief, workers)


def distribute(placement: Placement, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]):
    """The training data for `fit`: one input pipeline per worker, each batching per replica."""
    if placement.name == "default":
        return dataset_fn(tf.distribute.InputContext())
    return placement.strategy.distribute_datasets_from_function(dataset_fn)


def split_between_workers(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """A finite dataset (the held-out windows) that workers share batch by batch: each evaluates a part.

    Sharding by file, TensorFlow's first choice, fails when there are fewer files than workers.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def adapt_model(model: keras.Model, placement: Placement) -> None:
    """Work around Keras 3's two failures under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    1. `fit` first builds the model from a batch it reduces across workers, which the strategy refuses
       for an (x, y) pair. Our functional model is built already, so we let Keras treat it as made
       outside a strategy (it then builds lazily while tracing); `fit` must run inside `strategy.scope()`.
    2. Each step's logs are reduced with `reduce(MEAN, axis=0)`, which fails on scalars; a (1,) axis
       makes that the mean over replicas, which is what the logs should say.
    """
    if placement.workers == 1:
        return
    model._distribute_strategy = None

    def with_replica_axis(step):
        return lambda data: {name: tf.reshape(value, (1,)) for name, value in step(data).items()}

    model.train_step = with_replica_axis(model.train_step)
    model.test_step = with_replica_axis(model.test_step)


@contextmanager
def losing_a_worker_stops_training(placement: Placement, backup: bool):
    """Turn the error a lost worker causes on the others into one sentence that says how to go on."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError) as exc:
        if placement.workers == 1:
            raise
        again = "start every worker again with the same command" + (
            "; they resume from the last epoch in --backup-dir" if backup else "")
        raise WorkerLostError(f"a worker stopped or cannot be reached ({type(exc).__name__}); {again}") from exc


def any_worker(placement: Placement, flag: bool) -> bool:
    """True on every worker when `flag` is true on any: workers must stop after the same step, or the
    one that goes on waits forever for the others' gradients."""
    if placement.workers == 1:
        return flag
    votes = placement.strategy.reduce(tf.distribute.ReduceOp.SUM, tf.constant(float(flag)), axis=None)
    return float(votes) > 0


class WorkerBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` with one folder per worker, so that workers on one machine never write the
    same file; each keeps the same (synchronously trained) weights, so none needs a shared disk.

    The backup is written at the end of every epoch and deleted when training ends normally. (A worker
    killed while it writes its backup can be left an epoch behind the others; delete the folders then.)
    Beside it, the training time spent so far, so that a resumed run's time budget (`--max-minutes`)
    counts the runs before it: `started` is when the run would have started had it never stopped.
    """

    SECONDS_FILE = "textgen_seconds.json"

    def __init__(self, backup_dir: str, placement: Placement, started: float) -> None:
        folder = Path(backup_dir).expanduser()
        if placement.workers > 1:
            folder = folder / placement.task.replace(":", "-")
        super().__init__(str(folder))
        self.folder = folder
        self.seconds_before = self._saved_seconds()
        self.started = started - self.seconds_before

    def _saved_seconds(self) -> float:
        """Training time the runs before this one spent, up to their last backup (0 without one)."""
        if not self.saved_epoch():
            return 0.0
        try:
            return max(0.0, float(json.loads((self.folder / self.SECONDS_FILE).read_text())["seconds"]))
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.folder.is_dir():
            partial = self.folder / (self.SECONDS_FILE + ".partial")
            partial.write_text(json.dumps({"seconds": time.monotonic() - self.started}))
            os.replace(partial, self.folder / self.SECONDS_FILE)

    def on_train_end(self, logs=None):
        """Remove the backup's own files, never the folder's other contents (Keras removes the folder)."""
        if self.delete_checkpoint:
            remove_backup(self.folder)

    def saved_epoch(self) -> int:
        """The epoch a restarted run resumes from (0 when there is no backup)."""
        try:
            return int(json.loads((self.folder / "training_metadata.json").read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
