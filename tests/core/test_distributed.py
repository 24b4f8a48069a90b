"""`textgen train` under tf.distribute, run as a user runs it: workers are real processes (CPU only)
that find each other on 127.0.0.1, and a killed run resumes from its backup."""
from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_TEXT

TINY_ARGS = ["--embed", "16", "--hidden", "32", "--layers", "1", "--seq-len", "32", "--batch-size", "16",
             "--learning-rate", "1e-2", "--json"]


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (the OS picks them; they stay free unless another process takes them)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def shard_files(folder: Path, count: int = 12) -> str:
    """TINY_TEXT dealt line by line into `count` files; returns a glob that matches them."""
    folder.mkdir()
    lines = TINY_TEXT.splitlines(keepends=True)
    for i in range(count):
        (folder / f"part{i:02d}.txt").write_text("".join(lines[i::count]) * 3)
    return str(folder / "*.txt")


def start_train(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "textgen_core", "train", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **(env or {})})


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def test_two_workers_train_one_model_that_only_the_chief_writes(tmp_path):
    files = shard_files(tmp_path / "corpus")
    out = tmp_path / "model"
    ports = free_ports(2)
    args = [files, "--stream", "--strategy", "multiworker", "--out", str(out), *TINY_ARGS,
            "--epochs", "3", "--steps-per-epoch", "16", "--backup-dir", str(tmp_path / "backup")]
    # Only the chief has a time budget (6 ms: spent before any epoch can end, on any machine); the
    # other worker must stop with it, at the same epoch's end, before the three epochs are done.
    workers = [start_train(args + ["--max-minutes", "0.0001"], {"TF_CONFIG": tf_config(ports, 0)}),
               start_train(args, {"TF_CONFIG": tf_config(ports, 1)})]
    try:
        with ThreadPoolExecutor(2) as pool:            # both at once: neither may block on a full pipe
            results = list(pool.map(lambda w: w.communicate(timeout=180), workers))
    finally:
        for w in workers:
            w.kill()
            w.wait()
    for w, (_, stderr) in zip(workers, results):
        assert w.returncode == 0, stderr[-3000:]
    chief, other = (events_of(stdout) for stdout, _ in results)

    start, done = chief[0], chief[-1]
    assert start["workers"] == 2 and start["global_batch_size"] == 32 and start["streamed"]
    assert done["out"] == str(out) and other[-1]["out"] is None
    # A worker that stopped alone would wait for the other's gradients forever.
    assert done["stop_reason"] == other[-1]["stop_reason"] == "time budget"
    assert done["steps"] == other[-1]["steps"] and done["steps"] % 16 == 0 and done["steps"] < 3 * 16
    # One model, trained synchronously: both workers saw the same validation loss.
    assert [e["val_bpc"] for e in chief if e["event"] == "epoch"] == \
           [e["val_bpc"] for e in other if e["event"] == "epoch"]
    losses = [e["loss"] for e in chief if e["event"] in ("progress", "epoch")]
    assert losses[-1] < losses[0] - 0.5
    assert done["val_bpc"] < start["initial_val_bpc"] - 1.0

    from textgen_core import load_model
    model = load_model(out)
    assert isinstance(model.complete("the quick", max_chars=10), str)
    assert model.info.training["distribution"]["workers"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup", "corpus", "model"]   # no temp folder left
    assert not any((tmp_path / "backup").iterdir())                                     # backups are gone


def read_until(process: subprocess.Popen, lines: queue.Queue, predicate, timeout: float) -> list[dict]:
    """Events from `process` until one satisfies `predicate`; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no matching event within {timeout} s; saw {seen[-3:]}")
        if line is None:
            pytest.fail(f"training ended before a matching event; saw {seen[-3:]}")
        if line.startswith("{"):
            seen.append(json.loads(line))
            if predicate(seen[-1]):
                return seen


def test_a_killed_run_resumes_from_its_last_epoch(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    backup = tmp_path / "backup"
    args = [str(corpus), "--out", str(tmp_path / "model"), *TINY_ARGS, "--epochs", "5", "--steps-per-epoch", "10",
            "--patience", "1000", "--backup-dir", str(backup)]
    first, first_started = start_train(args), time.monotonic()
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in first.stdout] + [lines.put(None)],
                         daemon=True).start()
        read_until(first, lines, lambda e: e["event"] == "epoch" and e["epoch"] == 2, timeout=180)
    finally:
        first.kill()
        first.wait()
    first_seconds = time.monotonic() - first_started
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] >= 2

    second = start_train(args)
    try:
        stdout, stderr = second.communicate(timeout=180)
    finally:
        second.kill()
        second.wait()
    assert second.returncode == 0, stderr[-3000:]
    events = events_of(stdout)
    epochs = [e["epoch"] for e in events if e["event"] == "epoch"]
    assert events[0]["resumed_from_epoch"] == epochs[0] - 1 >= 2 and epochs[-1] == 5
    assert events[-1]["steps"] == 50 and not backup.exists()
    # The time budget and the training time go on from the first run's: it spent some of its time
    # before its last backup, and the second run's time adds to that.
    assert 0 < events[0]["resumed_after_s"] < first_seconds
    assert events[-1]["seconds"] > events[0]["resumed_after_s"]


@pytest.mark.parametrize("tf_config, message", [
    (None, "--strategy multiworker needs TF_CONFIG"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}', "is not one of the cluster"),
])
def test_a_bad_cluster_is_one_clear_line_before_tensorflow_starts(tmp_path, tf_config, message):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"} | ({"TF_CONFIG": tf_config} if tf_config else {})
    code = ("import sys; from textgen_core.cli import main; "
            "status = main(['train', sys.argv[1], '--out', sys.argv[2], '--strategy', 'multiworker']); "
            "print(status, 'tensorflow' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code, str(corpus), str(tmp_path / "out")], capture_output=True,
                         text=True, cwd=REPO, env=env, timeout=60)
    assert run.stdout.split() == ["2", "False"], run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr


def test_streaming_holds_out_whole_files_when_there_are_enough():
    from textgen_core.train.streaming import TrainingFile, split_files

    many = [TrainingFile(f"f{i}", Path(f"/corpus/f{i}.txt"), 1000) for i in range(30)]
    train, val = split_files(many, 0.1)
    assert len(val) == 3 and all(r.start == 0 and r.end == 1000 for r in train + val)
    assert {r.path for r in train}.isdisjoint(r.path for r in val)
    assert split_files(list(reversed(many)), 0.1)[1] == val          # the same files, whatever the order

    few = many[:3]
    train, val = split_files(few, 0.1)
    assert [(r.start, r.end) for r in train] == [(0, 900)] * 3 and [(r.start, r.end) for r in val] == [(900, 1000)] * 3
