"""Growing a model wider (`textgen widen`, `textgen_core.train.widening`): a real trained model grown
to more units a layer predicts what it did, trains on from there with `train --base`, and the
command refuses what it cannot do in one line without touching what is there."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import TINY_TEXT
from tests.core.test_cli import textgen
from textgen_core import load_model
from textgen_core.model.files import load_model_folder
from textgen_core.train.widening import widen_model, widen_weights

TEXT = TINY_TEXT.encode()[:1500]


@pytest.fixture(scope="module")
def two_layers(tiny_model_dir, tmp_path_factory):
    """A real two-layer model (the tiny one has one layer), trained briefly on the tiny text."""
    out = tmp_path_factory.mktemp("models") / "two"
    corpus = out.parent / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    run = textgen("train", corpus, "--out", out, "--embed", 8, "--hidden", 24, "--layers", 2, "--epochs", 1,
                  "--steps-per-epoch", 20, "--seq-len", 32, "--batch-size", 16, "--seed", 3)
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.parametrize("model", ["tiny_model_dir", "two_layers"])
def test_the_grown_model_predicts_what_the_model_did(model, request, tmp_path):
    folder = request.getfixturevalue(model)
    before = load_model(folder)
    wider = before.config.hidden + 16
    info = widen_model(str(folder), wider, tmp_path / "wide", seed=5)
    after = load_model(tmp_path / "wide")
    assert after.config.hidden == wider and after.config.layers == before.config.layers
    np.testing.assert_allclose(after.target_probs(TEXT), before.target_probs(TEXT), rtol=1e-5, atol=1e-7)
    assert after.complete("The qu", 30) == before.complete("The qu", 30)
    assert info.training["widened"]["hidden"] == [before.config.hidden, wider]
    assert info.match == load_model_folder(folder)[0].match


def test_the_new_units_are_read_with_zero_and_read_their_inputs(two_layers):
    info, weights = load_model_folder(two_layers)
    old, new = info.config.hidden, 32
    config, grown = widen_weights(info.config, weights, new, np.random.default_rng(0))
    assert {name: array.shape for name, array in grown.items()} == config.weight_shapes()
    for gate in range(3):
        old_cols, new_cols = slice(gate * new, gate * new + old), slice(gate * new + old, (gate + 1) * new)
        # the old units read nothing of the new ones, the new ones read their whole input
        assert not grown["gru0/recurrent_kernel"][old:, old_cols].any()
        assert not grown["gru1/kernel"][old:, old_cols].any()
        assert grown["gru1/kernel"][:, new_cols].std() > 0 and grown["gru0/recurrent_kernel"][:, new_cols].std() > 0
        np.testing.assert_array_equal(grown["gru1/recurrent_kernel"][:old, old_cols],
                                      weights["gru1/recurrent_kernel"][:, gate * old:(gate + 1) * old])
    assert not grown["dense/kernel"][old:].any()
    again = widen_weights(info.config, weights, new, np.random.default_rng(0))[1]
    assert all(np.array_equal(grown[name], again[name]) for name in grown)       # the seed decides


def test_training_on_from_it_moves_the_new_units(tiny_model_dir, tmp_path):
    textgen_run = textgen("widen", tiny_model_dir, "--hidden", 96, "--out", tmp_path / "wide", "--seed", 1)
    assert textgen_run.returncode == 0, textgen_run.stderr
    assert "64 to 96 units" in textgen_run.stdout and "--base" in textgen_run.stdout
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    run = textgen("train", corpus, "--out", tmp_path / "trained", "--base", tmp_path / "wide", "--epochs", 1,
                  "--steps-per-epoch", 3, "--seq-len", 32, "--batch-size", 8)
    assert run.returncode == 0, run.stderr
    _, trained = load_model_folder(tmp_path / "trained")
    assert trained["dense/kernel"].shape == (96, 256) and trained["dense/kernel"][64:].any()
    config = json.loads((tmp_path / "trained" / "config.json").read_text())
    assert config["architecture"]["hidden"] == 96


def test_refusals_are_one_line_and_touch_nothing(tiny_model_dir, tmp_path):
    narrower = textgen("widen", tiny_model_dir, "--hidden", 64, "--out", tmp_path / "same")
    assert narrower.returncode == 2 and "needs more than that" in narrower.stderr
    assert "Traceback" not in narrower.stderr and not (tmp_path / "same").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a model")
    taken = textgen("widen", tiny_model_dir, "--hidden", 80, "--out", mine)
    assert taken.returncode == 2 and "Traceback" not in taken.stderr
    assert (mine / "notes.txt").read_text() == "not a model" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    missing = textgen("widen", tmp_path / "nothing-here", "--hidden", 80, "--out", tmp_path / "out")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and not (tmp_path / "out").exists()


def test_an_unwritable_out_and_a_bad_seed_are_one_line_each(tiny_model_dir, tmp_path):
    """A name too long once the temporary folder's suffix is added, a place under a file, a place no
    folder can be made in (/proc), and a negative seed each gave a traceback or another tool's words (a new
    user's trial); each is one line now, and nothing is left behind."""
    cases = {
        "too long": (tmp_path / ("m" * 240), "the name is too long for the file system"),
        "under a file": (tmp_path / "afile.txt" / "sub", "afile.txt is a file, not a folder"),
        "nowhere": ("/proc/textgen-test-model", "cannot write the model folder"),   # not even root writes there
    }
    (tmp_path / "afile.txt").write_text("mine")
    for what, (out, said) in cases.items():
        run = textgen("widen", tiny_model_dir, "--hidden", 80, "--out", out)
        assert run.returncode == 2 and said in run.stderr and "Traceback" not in run.stderr, (what, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, (what, run.stderr)
    assert (tmp_path / "afile.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt"]
    seed = textgen("widen", tiny_model_dir, "--hidden", 80, "--seed", -1, "--out", tmp_path / "seeded")
    assert seed.returncode == 2 and "a seed is a whole number from 0" in seed.stderr and "Traceback" not in seed.stderr
    assert not (tmp_path / "seeded").exists()
