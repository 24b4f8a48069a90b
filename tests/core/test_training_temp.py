"""Training leaves nothing in the system's temporary folder: TensorFlow's generated files go into a
private folder that goes with the process, cancelled or not, or with the next training after a kill
(issue 23, item 8)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.conftest import REPO, TINY_TEXT

SLOW = ["--epochs", "100", "--steps-per-epoch", "200", "--embed", "8", "--hidden", "32", "--layers", "1",
        "--seq-len", "32", "--batch-size", "8", "--json"]


def _start_training(tmp_path, temp, out_name: str) -> subprocess.Popen:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    env = {**os.environ, "TMPDIR": str(temp)}
    return subprocess.Popen([sys.executable, "-m", "textgen_core", "train", str(corpus), "--out",
                             str(tmp_path / out_name), *SLOW], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=env)


def _wait_until_training(job: subprocess.Popen) -> None:
    """Until the first progress event: TensorFlow has traced (and autograph written) the train step."""
    for line in job.stdout:
        if json.loads(line).get("event") == "progress":
            return
    raise AssertionError(f"training ended before it started: {job.stderr.read()}")


def test_a_cancelled_training_leaves_nothing_in_the_temporary_folder(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    job = _start_training(tmp_path, temp, "cancelled")
    _wait_until_training(job)
    assert list(temp.iterdir()), "training writes into its private folder meanwhile"
    job.send_signal(signal.SIGTERM)                     # what :TextGenTrainStop does
    assert job.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(temp.iterdir()) == []
    assert not (tmp_path / "cancelled").exists()


def test_what_a_killed_training_left_is_removed_by_the_next_one(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / "someone-elses-file.txt").write_text("not ours")
    killed = _start_training(tmp_path, temp, "killed")
    _wait_until_training(killed)
    killed.kill()
    killed.wait(timeout=60)
    left = [p.name for p in temp.iterdir() if p.name.startswith("textgen-train-")]
    assert left, "a SIGKILL leaves the private folder"
    nxt = _start_training(tmp_path, temp, "next")
    _wait_until_training(nxt)
    names = sorted(p.name for p in temp.iterdir())
    assert not set(left) & set(names)
    assert "someone-elses-file.txt" in names
    nxt.terminate()
    nxt.wait(timeout=60)
    assert sorted(p.name for p in temp.iterdir()) == ["someone-elses-file.txt"]
