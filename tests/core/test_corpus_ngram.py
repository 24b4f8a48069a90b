"""A model's corpus n-gram counted into the cache (`memory.corpus_ngram`, `textgen corpus-ngram`) where
its folder has none: counted as `textgen ngram` counts, from a Neovim runtime folder given; reused;
one table per model; a damaged one counted again; a user's folder never removed; one count at a time;
a failed count reported once and not started again (`serve.corpus_count`).

The runtime and standard library here are small folders of a few files, so a count takes milliseconds.
"""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.core.test_cli import textgen
from tests.nvim_harness import wait_for
from textgen_core.memory import corpus_ngram
from textgen_core.memory.corpus_ngram import CorpusNgramError, count_corpus_ngram, load_cached, model_key
from textgen_core.memory.ngram import build_ngram
from textgen_core.model.registry import SHIPPED_MODELS
from textgen_core.model.vocab import is_probably_binary
from textgen_core.serve.corpus_count import CorpusCount
from textgen_core.train.corpus import select
from textgen_core.train.held_out import TrainingText, split_texts

HELP = "*api.txt*  Nvim\n\nnvim_buf_set_extmark({buffer}, {ns_id}, {line}, {col}, {opts})\n" * 40
LUA = "local M = {}\nfunction M.setup(opts)\n  vim.api.nvim_buf_set_extmark(0, ns, 0, 0, {})\nend\nreturn M\n" * 30
PYTHON = "import os\n\ndef join(a, b):\n    return os.path.join(a, b)\n" * 50


def make_runtime(root: Path) -> Path:
    """A Neovim runtime folder of a few help and Lua files (one of them binary, one empty)."""
    for name, text in {"doc/api.txt": HELP, "doc/lua.txt": HELP.replace("api", "lua"), "doc/empty.txt": "",
                       "lua/vim/shared.lua": LUA, "lua/vim/fs.lua": LUA.replace("setup", "dir"),
                       "lua/vim/blob.lua": "\0\1\2" * 100}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def make_stdlib(root: Path) -> Path:
    """A Python standard library of a few modules (its tests are left out of the corpus)."""
    for name, text in {"os_extra.py": PYTHON, "json/decoder.py": PYTHON.replace("join", "load"),
                       "test/test_os.py": "assert False\n" * 100}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def default_like(tiny_model_dir: Path, folder: Path) -> Path:
    """A copy of the tiny model that says, as the shipped default model does, that its corpus n-gram
    was counted from the default corpus (with weights fitted with it), and has no table."""
    shutil.copytree(tiny_model_dir, folder)
    shipped = json.loads((SHIPPED_MODELS / "default" / "config.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    config["ngram"] = shipped["ngram"]
    config["match"]["with_ngram"] = shipped["match"]["with_ngram"]
    (folder / "config.json").write_text(json.dumps(config))
    shutil.rmtree(folder / "ngram", ignore_errors=True)
    return folder


@pytest.fixture
def corpus(tmp_path):
    return {"runtime": make_runtime(tmp_path / "runtime"), "stdlib": make_stdlib(tmp_path / "stdlib")}


def count(model, cache, corpus, said=None):
    return count_corpus_ngram(model, cache, corpus["runtime"], stdlib=corpus["stdlib"],
                              say=(said.append if said is not None else lambda line: None))


def test_the_corpus_command_lists_the_files_of_a_runtime_given(tmp_path, corpus):
    run = textgen("corpus", "--kind", "prose,lua", "--split", "all", "--runtime", corpus["runtime"])
    assert run.returncode == 0, run.stderr
    assert sorted(Path(p).relative_to(corpus["runtime"]).as_posix() for p in run.stdout.split()) == [
        "doc/api.txt", "doc/empty.txt", "doc/lua.txt", "lua/vim/blob.lua", "lua/vim/fs.lua", "lua/vim/shared.lua"]
    missing = textgen("corpus", "--runtime", tmp_path / "nowhere")
    assert missing.returncode == 2 and missing.stderr.strip().endswith(f"$VIMRUNTIME): {tmp_path / 'nowhere'}")


def test_a_count_is_what_textgen_ngram_counts_and_the_next_call_reuses_it(tiny_model_dir, tmp_path, corpus):
    model = default_like(tiny_model_dir, tmp_path / "default")
    cache = tmp_path / "cache"
    first = count(model, cache, corpus)
    assert first.action == "counted"
    assert first.table.folder == cache / "corpus" / model_key(model) and model_key(model).startswith("default-")
    # The same bytes as `textgen ngram MODEL $(textgen corpus --split train)` counts: files read whole,
    # empty and binary ones skipped, each file's held-out tail left out, orders and min_count of the config.
    texts = [TrainingText(str(f.path), f.path.read_bytes())
             for f in select(split="train", runtime=corpus["runtime"], stdlib=corpus["stdlib"])]
    texts = [t for t in texts if t.data and not is_probably_binary(t.data)]
    assert {Path(t.name).name for t in texts} >= {"api.txt", "shared.lua", "os_extra.py"}
    expected = build_ngram(split_texts(texts, 0.1)[0], min_count=2)
    cached = load_cached(cache, model_key(model))
    assert cached.ngram.orders == expected.orders and cached.ngram.contexts == expected.contexts > 0
    np.testing.assert_array_equal(cached.ngram.unigram, expected.unigram)
    for a, b in zip(cached.ngram.tables, expected.tables):
        for name in ("keys", "starts", "next_bytes", "counts"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert cached.meta["files"] == len(texts) and cached.meta["runtime"] == str(corpus["runtime"])

    written = {p: p.stat().st_mtime_ns for p in first.table.folder.rglob("*")}
    again = count(model, cache, corpus)
    assert again.action == "cached" and again.table.folder == first.table.folder
    assert {p: p.stat().st_mtime_ns for p in first.table.folder.rglob("*")} == written
    run = textgen("corpus-ngram", model, "--runtime", corpus["runtime"], "--cache-dir", cache, "--json", "--nice", 1)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["action"] == "cached" and json.loads(run.stdout)["cache"] == str(first.table.folder)
    # The model loaded as the editor loads it serves with the table.
    from textgen_core import load_model
    counter = CorpusCount(lambda *_: None, cache_dir=str(cache), runtime=str(corpus["runtime"]))
    served = counter.attach(load_model(model, corpus_cache=False))
    assert served.ngram is not None and served.ngram.contexts == expected.contexts
    assert served.mixer.ngram_weights == tuple(json.loads((model / "config.json").read_text())
                                               ["match"]["with_ngram"]["ngram_weights"])


def test_outside_the_editor_a_model_serves_the_table_the_editor_counted(tiny_model_dir, tmp_path, corpus,
                                                                        monkeypatch):
    """The light install ships the default model without its table: the CLI and the Python API then
    serve the one the editor counted into stdpath('cache') ($TEXTGEN_CACHE_DIR where the plugin runs them)."""
    from textgen_core import load_model
    model = default_like(tiny_model_dir, tmp_path / "default")
    cache = tmp_path / "cache"
    text = tmp_path / "held_out.txt"
    text.write_text(LUA[:600])

    def cli_bpc():
        run = textgen("eval", "--model", model, text, "--json")
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)["overall_bpc"]

    monkeypatch.setenv("TEXTGEN_CACHE_DIR", str(cache))
    assert load_model(model).ngram is None                     # nothing counted yet
    without = cli_bpc()
    counted = count(model, cache, corpus).table
    loaded = load_model(model)
    assert loaded.ngram is not None and loaded.ngram.contexts == counted.ngram.contexts
    assert loaded.mixer.ngram_weights == tuple(json.loads((model / "config.json").read_text())
                                               ["match"]["with_ngram"]["ngram_weights"])
    assert load_model(model, corpus_cache=False).ngram is None
    assert cli_bpc() < without                                  # the table knows this Lua
    monkeypatch.setenv("TEXTGEN_CACHE_DIR", str(tmp_path / "another"))
    assert load_model(model).ngram is None


def test_kinds_are_fitted_with_the_table_counted_into_the_cache_and_none_is_copied(tiny_model_dir, tmp_path, corpus,
                                                                                   monkeypatch):
    """The light install's default has its table in the cache only: `textgen fit` fits each kind's
    weights with that table (the ones the editor will mix by) and writes no copy of it."""
    from textgen_core import load_model
    model = default_like(tiny_model_dir, tmp_path / "default")
    monkeypatch.setenv("TEXTGEN_CACHE_DIR", str(tmp_path / "cache"))
    count(model, tmp_path / "cache", corpus)
    (tmp_path / "init.lua").write_text(LUA * 4)
    unfitted = tmp_path / "not-counted"
    shutil.copytree(model, unfitted)
    run = textgen("fit", unfitted, "--kind", "lua", tmp_path / "init.lua", "--out", unfitted)
    assert run.returncode != 0 and "its corpus n-gram is not counted yet" in run.stderr     # nothing fitted without it
    run = textgen("fit", model, "--kind", "lua", tmp_path / "init.lua", "--val-fraction", 0.5, "--out", model)
    assert run.returncode == 0, run.stderr
    kinds = json.loads((model / "config.json").read_text())["match"]["kinds"]
    assert "with_ngram" in kinds["lua"] and not (model / "ngram").exists()
    # Fitted in place, the model still finds the table counted for it: its key leaves the weights out.
    assert load_model(model).ngram is not None and load_model(model).for_kind("lua").kind == "lua"


def test_a_model_trained_from_one_without_its_table_carries_the_counted_one_over(tiny_model_dir, tmp_path, corpus,
                                                                                  monkeypatch):
    model = default_like(tiny_model_dir, tmp_path / "default")
    cache = tmp_path / "cache"
    counted = count(model, cache, corpus).table
    text = tmp_path / "mine.txt"
    text.write_text(LUA * 3)

    def train(out):
        run = textgen("train", text, "--out", out, "--base", model, "--epochs", 1, "--steps-per-epoch", 2,
                      "--seq-len", 32, "--batch-size", 8)
        assert run.returncode == 0, run.stderr
        return run

    monkeypatch.setenv("TEXTGEN_CACHE_DIR", str(cache))
    train(tmp_path / "tuned")
    from textgen_core import load_model
    tuned = load_model(tmp_path / "tuned", corpus_cache=False)
    assert (tmp_path / "tuned" / "ngram").is_dir() and tuned.ngram.contexts == counted.ngram.contexts
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["match"].get("with_ngram")

    # Nothing counted, and the runtime named is not Neovim's: trained all the same, without a table, in one line.
    monkeypatch.setenv("TEXTGEN_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("VIMRUNTIME", str(tmp_path))
    run = train(tmp_path / "plain")
    assert "training without default's corpus n-gram" in run.stderr and "not Neovim's runtime" in run.stderr
    assert not (tmp_path / "plain" / "ngram").exists()
    assert load_model(tmp_path / "plain").ngram is None


def test_another_model_gets_its_own_table_and_a_newer_version_replaces_the_older(tiny_model_dir, tmp_path, corpus):
    cache = tmp_path / "cache"
    model = default_like(tiny_model_dir, tmp_path / "a" / "default")
    other = default_like(tiny_model_dir, tmp_path / "b" / "mine")       # same files, another name
    assert model_key(other) != model_key(model)
    first, theirs = count(model, cache, corpus), count(other, cache, corpus)
    assert theirs.action == "counted" and theirs.table.folder != first.table.folder
    weights = np.load(model / "weights.npz")                             # the model trained further
    np.savez(model / "weights.npz", **{name: weights[name] * 1.01 for name in weights.files})
    assert model_key(model) != first.table.folder.name
    newer = count(model, cache, corpus)
    assert newer.action == "counted" and newer.table.folder.name == model_key(model)
    assert not first.table.folder.exists()                               # the older version's table
    assert theirs.table.folder.exists()                                  # another model's stays


def test_a_damaged_table_is_counted_again_with_one_line(tiny_model_dir, tmp_path, corpus):
    model = default_like(tiny_model_dir, tmp_path / "default")
    cache = tmp_path / "cache"
    folder = count(model, cache, corpus).table.folder
    keys = folder / "ngram" / "k4.keys.npy"
    keys.write_bytes(keys.read_bytes()[:-8])
    with pytest.raises(CorpusNgramError, match="k4.keys.npy"):
        load_cached(cache, model_key(model))
    said = []
    result = count(model, cache, corpus, said)
    assert result.action == "counted" and len(said) == 1
    assert "k4.keys.npy" in said[0] and said[0].endswith("counting it again") and "\n" not in said[0]
    assert load_cached(cache, model_key(model)).ngram.contexts == result.table.ngram.contexts
    assert [p.name for p in (cache / "corpus").iterdir() if p.name.startswith(".") and "lock" not in p.name] == []


def test_a_users_folder_at_the_tables_path_is_never_removed(tiny_model_dir, tmp_path, corpus):
    model = default_like(tiny_model_dir, tmp_path / "default")
    cache = tmp_path / "cache"
    theirs = cache / "corpus" / model_key(model)                    # a user's folder where the table goes
    (theirs / "ngram").mkdir(parents=True)
    (theirs / "ngram" / "orders.npy").write_text("mine")
    (theirs / "notes.txt").write_text("my notes")
    older = cache / "corpus" / "default-0123456789abcdef"            # and one named as an older version's
    older.mkdir()
    (older / "corpus.json").write_text("{}")
    with pytest.raises(CorpusNgramError, match="not a corpus n-gram of textgen's, left as it is"):
        count(model, cache, corpus)
    assert (theirs / "notes.txt").read_text() == "my notes" and (theirs / "ngram" / "orders.npy").read_text() == "mine"
    assert sorted(p.name for p in (cache / "corpus").iterdir() if ".new-" in p.name or ".old-" in p.name) == []
    failure = corpus_ngram.recorded_failure(cache, model_key(model))
    assert "not a corpus n-gram of textgen's" in failure["reason"]
    shutil.move(theirs, tmp_path / "moved-away")                      # the way out the message gives
    assert count(model, cache, corpus).action == "counted"
    assert corpus_ngram.recorded_failure(cache, model_key(model)) is None
    assert (older / "corpus.json").read_text() == "{}"               # not ours: kept through the pruning


def test_a_second_count_waits_for_the_first_and_uses_its_table(tiny_model_dir, tmp_path, corpus):
    model = default_like(tiny_model_dir, tmp_path / "default")
    elsewhere = count(model, tmp_path / "elsewhere", corpus).table.folder
    cache = tmp_path / "cache"
    results = []
    with corpus_ngram._locked(cache, model_key(model)):                    # the first count, running
        assert corpus_ngram.is_counting(cache, model_key(model))
        second = threading.Thread(target=lambda: results.append(count(model, cache, corpus)))
        second.start()
        wait_for(lambda: any("->" in line and "FLOCK" in line for line in Path("/proc/locks").read_text().splitlines()),
                 what="the second count waiting for the lock")
        shutil.copytree(elsewhere, cache / "corpus" / model_key(model))    # the first writes its table
    second.join(30)
    assert results and results[0].action == "cached"
    assert not corpus_ngram.is_counting(cache, model_key(model))


def test_a_model_whose_ngram_was_counted_from_other_files_gets_no_count(tiny_model_dir, tmp_path, corpus):
    (tmp_path / "notes.txt").write_text(HELP)
    assert textgen("ngram", tiny_model_dir, tmp_path / "notes.txt", "--out", tmp_path / "counted").returncode == 0
    shutil.rmtree(tmp_path / "counted" / "ngram")
    from textgen_core import load_model
    counter = CorpusCount(lambda *_: None, cache_dir=str(tmp_path / "cache"), runtime=str(corpus["runtime"]))
    served = counter.attach(load_model(tmp_path / "counted"))
    assert served.ngram is None and counter.status()["state"] == "none"
    with pytest.raises(CorpusNgramError, match="no corpus n-gram counted from the default model's corpus"):
        count(tmp_path / "counted", tmp_path / "cache", corpus)
    assert not (tmp_path / "cache" / "corpus").exists()


def test_a_failed_count_is_reported_and_not_started_again(tiny_model_dir, tmp_path):
    from textgen_core import load_model
    model = load_model(default_like(tiny_model_dir, tmp_path / "default"))
    no_runtime = tmp_path / "not-a-runtime"
    (no_runtime / "doc").mkdir(parents=True)
    counted = []
    counter = CorpusCount(lambda *args: counted.append(args), cache_dir=str(tmp_path / "cache"),
                          runtime=str(no_runtime))
    assert counter.attach(model) is model and counter.status()["state"] == "counting"
    status = wait_for(lambda: (s := counter.status())["state"] == "failed" and s, what="the count to fail")
    assert "not Neovim's runtime" in status["reason"] and "\n" not in status["reason"]
    assert status["retry"].split()[1:4] == ["-m", "textgen_core", "corpus-ngram"] and str(no_runtime) in status["retry"]
    again = CorpusCount(lambda *args: counted.append(args), cache_dir=str(tmp_path / "cache"), runtime=str(no_runtime))
    assert again.attach(model) is model and again.status()["state"] == "failed"     # recorded: no second count
    assert again._process is None and counted == []
