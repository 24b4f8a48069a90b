"""Averaging models (`textgen average`, `textgen_core.train.averaging`): the weighted mean of real models,
refitted and measured on held-out text as `train` does, and clear refusals."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import TINY_TEXT
from tests.core.test_cli import textgen
from textgen_core import load_model
from textgen_core.model.config import ModelConfig, ModelInfo
from textgen_core.model.files import load_model_folder, save_model_folder
from textgen_core.train.averaging import Member, average_models, parse_member
from textgen_core.train.held_out import TrainingText, split_texts, windowed_val_bpc


@pytest.fixture(scope="module")
def two_models(tiny_model_dir, tmp_path_factory):
    """The tiny trained model and a second one of its architecture: the same weights moved, as a
    fine-tuned model moves away from its base."""
    info, weights = load_model_folder(tiny_model_dir)
    rng = np.random.default_rng(0)
    moved = {name: (array + rng.normal(0, 0.05, array.shape)).astype(np.float32) for name, array in weights.items()}
    other = tmp_path_factory.mktemp("models") / "moved"
    save_model_folder(other, ModelInfo(config=info.config, training={"base": str(tiny_model_dir)},
                                       metrics={"val_bpc": 2.0}, match=info.match), moved)
    return (tiny_model_dir, weights), (other, moved)


def test_the_average_is_the_weighted_mean_of_every_array_and_works_as_a_model(two_models, tmp_path):
    (first, a), (second, b) = two_models
    info = average_models([Member(str(first), 1), Member(str(second), 3)], tmp_path / "avg")

    _, averaged = load_model_folder(tmp_path / "avg")
    for name in a:
        np.testing.assert_allclose(averaged[name], 0.25 * a[name] + 0.75 * b[name], atol=1e-6)
    assert [m["weight"] for m in info.training["averaged"]] == [0.25, 0.75]
    assert info.training["averaged"][1]["training"] == {"base": str(first)}
    assert info.val_bpc is None                                   # nothing held out to measure on
    model = load_model(tmp_path / "avg")
    assert model.mixer is not None and model.info.match["weights"] == load_model(first).info.match["weights"]
    assert isinstance(model.complete("the quick", max_chars=10), str)


def test_with_texts_it_refits_the_buffer_weights_and_measures_val_bpc_as_training_does(two_models, tmp_path):
    (first, _), (second, _) = two_models
    texts = [TrainingText("tiny.txt", TINY_TEXT.encode()), TrainingText("dogs.txt", b"the dog sat on the log.\n" * 60)]
    info = average_models([Member(str(first), 1), Member(str(second), 1)], tmp_path / "avg", texts)

    saved, weights = load_model_folder(tmp_path / "avg")
    _, val = split_texts(texts, 0.1)
    assert saved.val_bpc == pytest.approx(windowed_val_bpc(saved.config, weights, val), abs=1e-4)
    assert saved.match["fitted_on_bytes"] == len(val) and saved.metrics["val_bpc_with_match"] > 0
    assert info.training["fitted_on"]["file_count"] == 2 and info.training["fitted_on"]["val_fraction"] == 0.1


def test_windowed_val_bpc_is_the_figure_keras_reports_on_the_same_windows(tiny_model_dir):
    import keras

    from textgen_core.train.keras_model import build_keras_model, weights_to_keras
    from textgen_core.train.training import _val_windows

    info, weights = load_model_folder(tiny_model_dir)
    val = TINY_TEXT.encode()[-3000:]
    model = build_keras_model(info.config)
    weights_to_keras(model, info.config, weights)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    windows = _val_windows(val, 64, batch_size=10**6)             # one batch: Keras' mean is over all windows
    keras_bpc = float(model.evaluate(windows, verbose=0)) / math.log(2)
    assert windowed_val_bpc(info.config, weights, val, seq_len=64) == pytest.approx(keras_bpc, abs=1e-4)


def test_model_specs_take_the_weight_after_the_last_colon():
    assert parse_member("build/a:0.4") == Member("build/a", 0.4)
    assert parse_member("default") == Member("default", 1.0)
    assert parse_member(r"C:\models\mine") == Member(r"C:\models\mine", 1.0)
    assert parse_member(r"C:\models\mine:2") == Member(r"C:\models\mine", 2.0)


def test_refusals_are_clear_and_write_nothing(two_models, tmp_path):
    (first, weights), (second, _) = two_models
    small = tmp_path / "small"
    config = ModelConfig(embed_dim=8, hidden=16, layers=1)
    save_model_folder(small, ModelInfo(config=config),
                      {name: np.zeros(shape, np.float32) for name, shape in config.weight_shapes().items()})
    cases = [([Member(str(first), 1)], "at least two models"),
             ([Member(str(first), 1), Member(str(second), 0)], "positive number"),
             ([Member(str(first), 1), Member(str(small), 1)], "only models of one architecture average"),
             ([Member(str(first), 1), Member(str(tmp_path / "nowhere"), 1)], "nowhere"),
             ([Member(str(first), 1), parse_member("default:abc")], "nor is 'abc' after its last colon a weight")]
    for members, message in cases:
        with pytest.raises(Exception, match=message):
            average_models(members, tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_the_command_averages_and_reports_and_refuses_in_one_line(two_models, tmp_path):
    (first, _), (second, _) = two_models
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    run = textgen("average", first, f"{second}:3", "--out", tmp_path / "avg", "--fit", corpus)
    assert run.returncode == 0, run.stderr
    assert "0.25" in run.stdout and "0.75" in run.stdout and "val bpc" in run.stdout
    config = json.loads((tmp_path / "avg" / "config.json").read_text())
    assert config["metrics"]["val_bpc"] > 0 and config["training"]["fitted_on"]["file_count"] == 1

    refused = textgen("average", first, "--out", tmp_path / "one")
    assert refused.returncode == 2 and "at least two models" in refused.stderr and "Traceback" not in refused.stderr
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the models folder should be")
    unwritable = textgen("average", first, second, "--out", blocker / "model")
    assert unwritable.returncode == 2 and "cannot write the model folder" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr and blocker.read_text().startswith("a file")
    # a share of 5 was accepted where no --fit used it
    share = textgen("average", first, second, "--out", tmp_path / "share", "--val-fraction", 5)
    assert share.returncode == 2 and "--val-fraction: the share held out is a number above 0" in share.stderr
    assert not (tmp_path / "share").exists()


def test_the_first_models_corpus_ngram_comes_along(tiny_model_dir, tmp_path):
    """`textgen average` saved no corpus n-gram: the average of a model with itself did worse than the
    model (a new user's trial, 1.42 → 1.46 bpc). The first member's table and weights come along, so
    that average is the model again; with --fit its weights are fitted anew, the table still there."""
    corpus = tmp_path / "notes.txt"
    corpus.write_text(TINY_TEXT)
    assert textgen("ngram", tiny_model_dir, corpus, "--out", tmp_path / "counted").returncode == 0
    run = textgen("average", tmp_path / "counted", f"{tmp_path / 'counted'}:3", "--out", tmp_path / "avg")
    assert run.returncode == 0 and "corpus n-gram kept" in run.stdout, run.stderr
    counted, averaged = load_model(tmp_path / "counted"), load_model(tmp_path / "avg")
    assert averaged.ngram is not None and averaged.info.ngram == counted.info.ngram
    text = TINY_TEXT[-2000:]
    assert averaged.bits_per_char(text) == pytest.approx(counted.bits_per_char(text), abs=1e-4)
    fitted = textgen("average", tmp_path / "counted", tiny_model_dir, "--out", tmp_path / "fitted", "--fit", corpus)
    assert fitted.returncode == 0, fitted.stderr
    info = json.loads((tmp_path / "fitted" / "config.json").read_text())
    assert "with_ngram" in info["match"] and load_model(tmp_path / "fitted").ngram is not None
