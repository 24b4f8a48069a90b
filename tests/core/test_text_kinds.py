"""Mixing weights fitted per kind of text (`textgen fit`, `TextModel.for_kind`, `model.text_kinds`): a
buffer is mixed by the weights fitted on its filetype's kind, other text by those fitted on all."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_TEXT
from tests.core.test_cli import textgen
from textgen_core import load_model
from textgen_core.decode import DecodeOptions
from textgen_core.model.text_kinds import KIND_FILETYPES, KINDS, kind_of
from textgen_core.serve.engine import Engine, fresh_completion

PHRASE = "vim.api.nvim_buf_set_extmark(buf, namespace, row, col, opts)\n"
FIT_BYTES = 16384


def random_words(rng: np.random.Generator, count: int) -> bytes:
    """Words of random letters: text no corpus n-gram knows, where trusting it only misleads."""
    return b" ".join(bytes(rng.integers(97, 123, 5).astype(np.uint8)) for _ in range(count)) + b"\n"


def fit_kinds_model(tiny_model_dir: Path, folder: Path) -> Path:
    """The tiny model given an n-gram of Lua-like text that repeats PHRASE, then its weights fitted per
    kind: "lua" on more of that text, "rust" on random words; saved at `folder / "kinds"`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.lua").write_text(TINY_TEXT + "".join(f"local mark{i} = {PHRASE}" for i in range(40)))
    run = textgen("ngram", tiny_model_dir, folder / "plugin.lua", "--out", folder / "counted")
    assert run.returncode == 0, run.stderr
    rng = np.random.default_rng(7)
    lua_files, rust_files = [], []
    for i in range(8):
        lua_files.append(folder / f"init{i}.lua")
        lines = "".join(f"local m{j} = {PHRASE}" for j in range(12))
        lua_files[-1].write_text(TINY_TEXT[i * 300:i * 300 + 900] + lines)
        rust_files.append(folder / f"lib{i}.rs")
        rust_files[-1].write_bytes(random_words(rng, 300))
    run = textgen("fit", folder / "counted", "--kind", "lua", *lua_files, "--kind", "rust", *rust_files,
                  "--bytes", FIT_BYTES, "--val-fraction", 0.5, "--out", folder / "kinds")
    assert run.returncode == 0, run.stderr
    assert "lua: fitted on " in run.stdout and "rust: fitted on " in run.stdout
    assert "mixing weights for lua, rust" in run.stdout
    return folder / "kinds"


@pytest.fixture(scope="module")
def kinds_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return fit_kinds_model(tiny_model_dir, tmp_path_factory.mktemp("kinds"))


def test_filetypes_name_their_kind_and_anything_else_none():
    assert all(kind_of(kind) == kind for kind in KINDS)
    assert all(kind_of(filetype) == kind for kind, filetypes in KIND_FILETYPES.items() for filetype in filetypes)
    assert kind_of("typescriptreact") == "javascript" and kind_of("sh") == "shell" and kind_of("vim") == "vimscript"
    assert kind_of("javascript.jsx") == "javascript" and kind_of("foo.rust") == "rust" and kind_of("Rust") == "rust"
    for other in ("", None, "cobol", "foo.bar", 42, "rust" * 100):
        assert kind_of(other) is None


def test_each_kind_gets_its_own_weights_and_a_buffer_of_it_is_mixed_by_them(kinds_model_dir):
    config = json.loads((kinds_model_dir / "config.json").read_text())
    kinds = config["match"]["kinds"]
    assert set(kinds) == {"lua", "rust"}
    # The n-gram counted Lua that repeats PHRASE: trusted on Lua, hardly on random words.
    lua, rust = (kinds[kind]["with_ngram"]["ngram_weights"] for kind in ("lua", "rust"))
    assert sum(lua[1:]) > 2 * sum(rust[1:])
    assert kinds["rust"]["fitted_on_bytes"] <= FIT_BYTES and kinds["rust"]["files"] == 8

    model = load_model(kinds_model_dir)
    rust = model.for_kind("rust")
    assert rust.kind == "rust" and rust.mixer.ngram_weights == tuple(kinds["rust"]["with_ngram"]["ngram_weights"])
    assert rust.mixer.weights == tuple(kinds["rust"]["with_ngram"]["weights"])
    assert rust.backend is model.backend and rust.ngram is model.ngram          # one network, states shared
    assert model.for_kind("rust") is rust and rust.for_kind("lua") is model.for_kind("lua")
    assert model.for_kind("lua").mixer.ngram_weights == tuple(kinds["lua"]["with_ngram"]["ngram_weights"])
    # Kinds it has no weights for, and text of no kind: the weights fitted on all of its text.
    for other in ("typescript", "", None, "cobol"):
        assert model.for_kind(other) is model and model.kind is None
    assert rust.for_kind(None) is model
    assert model.mixer.ngram_weights == tuple(config["match"]["with_ngram"]["ngram_weights"])

    # On random words it has not seen, the weights fitted on them do better than the model's.
    unseen = random_words(np.random.default_rng(99), 400).decode()
    assert rust.bits_per_char(unseen) < model.bits_per_char(unseen)
    run = textgen("eval", "--model", kinds_model_dir, "--kind", "rust", "--json", "-", stdin=unseen)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["kind"] == "rust"
    assert json.loads(run.stdout)["overall_bpc"] == pytest.approx(rust.bits_per_char(unseen), rel=1e-6)


def test_a_model_without_its_ngram_gets_the_kinds_weights_fitted_without_one(kinds_model_dir, tmp_path):
    import shutil

    shutil.copytree(kinds_model_dir, tmp_path / "copy")
    shutil.rmtree(tmp_path / "copy" / "ngram")
    kinds = json.loads((kinds_model_dir / "config.json").read_text())["match"]["kinds"]
    model = load_model(tmp_path / "copy")
    assert model.ngram is None
    assert model.for_kind("rust").mixer.weights == tuple(kinds["rust"]["weights"])
    # The table counted later (`memory.corpus_ngram`): every kind's twin gets the weights fitted with one.
    counted = load_model(kinds_model_dir).ngram
    rust = model.for_kind("rust").with_corpus_ngram(counted)
    assert rust.kind == "rust" and rust.mixer.ngram is counted and rust.backend is model.backend
    assert rust.mixer.ngram_weights == tuple(kinds["rust"]["with_ngram"]["ngram_weights"])
    assert model.with_corpus_ngram(counted).for_kind("rust").mixer.ngram_weights == rust.mixer.ngram_weights


def test_the_engine_keeps_its_states_across_kinds_and_learning_off(kinds_model_dir):
    """A twin of another kind is the same network: the states cached for one serve the other, with
    learning on or off (a new state cache would prime the whole window again, every keystroke)."""
    model = load_model(kinds_model_dir)
    engine = Engine(model)
    try:
        for kind in ("rust", "rust", "lua", None, "rust"):
            engine.submit(1, "the cat sat on the mat and the dog ", DecodeOptions(), lambda c: None, kind=kind)
            assert engine.wait_idle(30)
            cache = engine._cache
            assert cache is not None and cache.model.backend is model.backend
            engine.submit(1, "the cat sat on the mat and the dog s", DecodeOptions(), lambda c: None, kind=kind)
            assert engine.wait_idle(30) and engine._cache is cache, kind
    finally:
        engine.close()


def test_twins_keep_their_kind_through_new_weights_and_a_project(kinds_model_dir, tmp_path):
    rust = load_model(kinds_model_dir).for_kind("rust")
    assert rust.with_weights(rust.weights).kind == "rust"
    assert rust.with_project_memory(None).kind == "rust"



def test_a_dropped_model_and_its_twins_free_their_network_at_once(kinds_model_dir):
    """Learning swaps in new weights every few KB typed: each model it drops must free its megabytes
    then, not wait in a reference cycle for the garbage collector's next full pass (the host's memory
    climbed 55 MB a minute and fell back every few minutes while a person typed)."""
    import gc
    import weakref

    model = load_model(kinds_model_dir)
    gc.collect()
    gc.disable()
    try:
        made = {"new weights": model.with_weights(model.weights),
                "a twin of new weights": model.with_weights(model.weights).for_kind("rust"),
                "another n-gram": model.with_weights(model.weights).for_kind("lua").with_corpus_ngram(None),
                "a project": model.with_project_memory(None).for_kind("rust").for_kind(None)}
        for how in list(made):
            made[how].for_kind("rust"), made[how].for_kind("lua"), made[how].for_kind("typescript")
            network = weakref.ref(made[how].backend)
            assert network() is not None and network() is not model.backend
            del made[how]
            assert network() is None, f"the network of a model made with {how} was kept after it was dropped"
    finally:
        gc.enable()
    # A twin kept after its model was dropped still finds a model fitted on all the text, of its network.
    rust = load_model(kinds_model_dir).for_kind("rust")
    whole = rust.for_kind(None)
    assert whole.kind is None and whole.backend is rust.backend and whole.for_kind("rust") is rust
    assert rust.for_kind("lua").kind == "lua" and rust.for_kind(None) is whole

def test_an_average_keeps_no_weights_per_kind_of_its_first_model(kinds_model_dir, tiny_model_dir, tmp_path):
    from textgen_core.train.averaging import Member, average_models

    average_models([Member(str(kinds_model_dir), 1), Member(str(tiny_model_dir), 1)], tmp_path / "soup", [])
    soup = load_model(tmp_path / "soup")
    assert "kinds" not in soup.info.match and soup.for_kind("rust") is soup


def test_the_engine_serves_each_request_by_its_kind(kinds_model_dir):
    model = load_model(kinds_model_dir)
    engine = Engine(model)
    try:
        for kind, expected_kind in (("rust", "rust"), ("lua", "lua"), ("javascript", None), (None, None)):
            answers: list = []
            engine.submit(1, "the cat sat on the ", DecodeOptions(), lambda c, answers=answers: c.final and
                          answers.append(c), kind=kind)
            assert engine.wait_idle(30) and answers, kind
            assert engine.last_kind == expected_kind
            assert list(answers[-1].texts) == fresh_completion(model.for_kind(kind), "the cat sat on the ",
                                                               DecodeOptions())
    finally:
        engine.close()


def test_weights_of_a_kind_that_are_not_usable_are_ignored_as_data(kinds_model_dir, tmp_path):
    import shutil

    shutil.copytree(kinds_model_dir, tmp_path / "odd")
    config = json.loads((tmp_path / "odd" / "config.json").read_text())
    config["match"]["kinds"] = {"rust": "nonsense", "lua": {"with_ngram": {"ngram_weights": [99.0], "weights": "x"}},
                                "../etc": {"with_ngram": {}}, "cobol": {}}
    (tmp_path / "odd" / "config.json").write_text(json.dumps(config))
    model = load_model(tmp_path / "odd")
    assert model.for_kind("rust") is model                        # not a table: no weights for rust
    assert model.for_kind("lua") is model                         # none usable: the model's own, said so
    assert textgen("complete", "--model", tmp_path / "odd", "--kind", "lua", "the ").stderr.startswith(
        "textgen: odd has no mixing weights fitted on lua text")
    # Weights fitted without the n-gram that the model now has (fitted before its table was counted)
    # do not serve with it: the model's own do, and the kind is not claimed.
    config["match"]["kinds"] = {"lua": {"weights": config["match"]["weights"]}}
    (tmp_path / "odd" / "config.json").write_text(json.dumps(config))
    assert load_model(tmp_path / "odd").for_kind("lua").kind is None


def test_fit_refuses_in_one_line_what_it_cannot_do(tiny_model_dir, tmp_path):
    text = tmp_path / "a.rs"
    text.write_bytes(random_words(np.random.default_rng(1), 4000))
    (tmp_path / "small.rs").write_text("fn main() {}\n")
    cases = [
        (("--kind", "rust", tmp_path / "small.rs"), "--kind rust: the files' tails hold 1 bytes, too few"),
        (("--kind", "klingon", text), "unknown kind of text 'klingon': give one of python, lua"),
        (("--kind", "rust"), "--kind rust: give files of that kind after it"),
        (("--kind", "rust", text, "--kind", "rs", text), None),                      # rs is no filetype
        (("--kind", "rust", text, "--kind", "rust", text), "--kind rust is given twice"),
        (("--kind", "rust", text, "--bytes", 10), "--bytes must be from 4096"),
    ]
    for args, said in cases:
        run = textgen("fit", tiny_model_dir, *args, "--out", tmp_path / "out")
        assert run.returncode != 0
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        if said:
            assert said in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()
    run = textgen("complete", "--kind", "cobol", "the ")
    assert run.returncode != 0 and "unknown kind of text 'cobol'" in run.stderr
    run = textgen("complete", "--model", tiny_model_dir, "--kind", "go", "the qu")
    assert run.returncode == 0 and "has no mixing weights fitted on go text" in run.stderr


def test_the_help_lists_every_kind_and_its_filetypes():
    from tests.conftest import REPO

    help_text = (REPO / "doc" / "textgen.txt").read_text()
    table = help_text.split("    kind          filetypes ~\n", 1)[1].split("\n\n", 1)[0]
    listed: dict[str, list[str]] = {}
    kind = ""
    for line in table.splitlines():
        if not line.startswith("    " + " " * 14):
            kind, line = line.split()[0], line[len("    ") + len(line.split()[0]):]
        listed.setdefault(kind, []).extend(line.split())
    assert listed == {kind: list(filetypes) for kind, filetypes in KIND_FILETYPES.items()}


def test_a_model_fine_tuned_on_top_is_mixed_by_weights_fitted_to_it_not_the_bases_kinds(kinds_model_dir, tmp_path):
    """Weights per kind fit the network they were fitted with: training on top fits its own weights
    on its own text and keeps none of the base's per kind (a Lua buffer would otherwise be mixed by
    weights fitted to another network); `textgen fit` gives it some again."""
    (tmp_path / "notes.txt").write_text(TINY_TEXT)
    run = textgen("train", tmp_path / "notes.txt", "--out", tmp_path / "tuned", "--base", kinds_model_dir,
                  "--epochs", 1, "--steps-per-epoch", 2, "--seq-len", 32, "--batch-size", 8)
    assert run.returncode == 0, run.stderr
    tuned = load_model(tmp_path / "tuned")
    assert "kinds" not in tuned.info.match and tuned.ngram is not None      # the n-gram carried over
    assert tuned.for_kind("lua") is tuned
