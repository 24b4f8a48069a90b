"""The model library: numpy ⇄ Keras equivalence, real training, save/load, decoding, backends."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from textgen_core import ModelConfig, load_model
from textgen_core.decode import DecodeOptions, visible_text
from textgen_core.model.numpy_gru import NumpyGRU


def _random_keras_model(config, seed=0):
    from textgen_core.train.keras_model import build_keras_model, weights_from_keras, weights_to_keras

    model = build_keras_model(config)
    rng = np.random.default_rng(seed)
    # Random weights at the scale training produces (≈ 1/√fan-in), biases included.
    weights = {name: (rng.standard_normal(w.shape) * (0.5 if w.ndim == 1 or name.endswith("bias") else
                                                      1.5 / np.sqrt(w.shape[0]))).astype(np.float32)
               for name, w in weights_from_keras(model, config).items()}
    weights_to_keras(model, config, weights)
    return model, weights


@pytest.mark.parametrize("config", [ModelConfig(embed_dim=16, hidden=32, layers=2),
                                    ModelConfig(embed_dim=128, hidden=512, layers=2)])
def test_numpy_logits_match_keras_on_300_bytes(config):
    model, weights = _random_keras_model(config)
    ids = np.random.default_rng(1).integers(0, 256, 300).astype(np.int32)
    expected = model(ids[None]).numpy()[0]                                      # (300, 256)
    gru = NumpyGRU(config, weights)
    primed, _ = gru.prime(ids, all_logits=True)
    assert np.abs(primed - expected).max() < 1e-4
    state, stepped = gru.zero_state(1), []
    for byte in ids:
        logits, state = gru.step(np.array([byte]), state)
        stepped.append(logits[0])
    assert np.abs(np.array(stepped) - expected).max() < 1e-4


@pytest.mark.parametrize("rows", [2, 3, 4, 7, 9])
def test_a_step_of_few_rows_one_at_a_time_gives_each_row_what_it_gets_alone(rows):
    config = ModelConfig(embed_dim=16, hidden=128, layers=2)
    _, weights = _random_keras_model(config)
    one_at_a_time = NumpyGRU(config, weights, rows_one_at_a_time=True)
    matrix = NumpyGRU(config, weights, rows_one_at_a_time=False)
    ids = np.arange(rows, dtype=np.int32) * 29 % 256
    state = tuple(np.random.default_rng(2).standard_normal((rows, 128)).astype(np.float32) * 0.5
                  for _ in range(2))
    logits, new_state = one_at_a_time.step(ids, state)
    product_logits, product_state = matrix.step(ids, state)
    assert np.abs(logits - product_logits).max() < 1e-4
    assert all(np.abs(a - b).max() < 1e-5 for a, b in zip(new_state, product_state))
    if rows <= 7:                                        # a few rows: each one's numbers as if alone
        for row in range(rows):
            alone, alone_state = one_at_a_time.step(ids[row:row + 1], tuple(h[row:row + 1] for h in state))
            assert np.array_equal(alone[0], logits[row])
            assert all(np.array_equal(a[0], b[row]) for a, b in zip(alone_state, new_state))


def test_tiny_networks_keep_the_matrix_product_without_timing_it():
    config = ModelConfig(embed_dim=16, hidden=32, layers=2)
    _, weights = _random_keras_model(config)
    assert NumpyGRU(config, weights).rows_one_at_a_time is False


def test_tensorflow_backend_gives_the_same_greedy_text(tiny_model_dir):
    numpy_model = load_model(tiny_model_dir, backend="numpy")
    tf_model = load_model(tiny_model_dir, backend="tensorflow")
    for context in ["the quick brown", "def greet(", "naïve caf"]:
        assert numpy_model.complete(context, max_chars=40) == tf_model.complete(context, max_chars=40)
    text = "the cat sat on the mat"
    assert abs(numpy_model.bits_per_char(text) - tf_model.bits_per_char(text)) < 1e-3


def test_training_learns_far_below_the_uniform_baseline(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["metrics"]["val_bpc"] < 4.0, config["metrics"]          # uniform is 8 bits
    assert config["metrics"]["initial_val_bpc"] > 7.0
    assert config["training"]["corpus"]["files"] == [{"name": "tiny.txt",
                                                      "bytes": config["training"]["corpus"]["bytes"]}]
    assert len(config["training"]["corpus"]["sha256"]) == 64


def test_reloaded_model_continues_its_training_text(tiny_model):
    assert tiny_model.bits_per_char("the quick brown fox jumps over the lazy dog.") < 3.0
    assert tiny_model.complete("the quick brown fox jumps over the lazy").startswith(" d")


def test_greedy_is_deterministic_and_seeded_sampling_reproducible(tiny_model):
    first = tiny_model.complete("the ", max_chars=30)
    assert all(tiny_model.complete("the ", max_chars=30) == first for _ in range(3))
    a = tiny_model.complete("the ", max_chars=30, temperature=1.5, seed=7)
    b = tiny_model.complete("the ", max_chars=30, temperature=1.5, seed=7)
    assert a == b
    samples = {tiny_model.complete("the ", max_chars=30, temperature=1.5, seed=s) for s in range(6)}
    assert len(samples) > 1


def test_alternatives_are_distinct_and_start_with_the_greedy_one(tiny_model):
    alternatives = tiny_model.complete("the ", max_chars=30, n=4)
    assert alternatives[0] == tiny_model.complete("the ", max_chars=30)
    assert len(alternatives) == len(set(alternatives)) >= 2


def test_beam_search_finds_a_likely_continuation(tiny_model):
    beam = tiny_model.complete("a stitch in time", max_chars=30, beam_width=4)
    assert beam.startswith(" saves")


def test_stop_rules():
    opts = DecodeOptions(max_chars=10)
    assert visible_text(b"abc\ndef", opts) == ("abc", True)
    assert visible_text(b"\n  abc\nx", opts) == ("\n  abc", True)     # a leading newline continues
    assert visible_text(b"abcdefghijkl", opts) == ("abcdefghij", True)
    assert visible_text(b"lo world", DecodeOptions(stop_at_word_end=True)) == ("lo", True)
    assert visible_text("caf\u00e9".encode()[:-1], opts) == ("caf", False)  # half a character hidden
    assert visible_text(b"ab\xffcd", opts) == ("ab", True)


def test_decoding_stops_within_max_chars(tiny_model):
    text = tiny_model.complete("the", max_chars=5, stop_at_newline=False)
    assert len(text) <= 5
    long = tiny_model.complete("the", max_chars=200, stop_at_newline=False)
    assert "\n" in long


def test_streaming_partials_are_prefixes_of_the_result(tiny_model):
    partials = []
    final = tiny_model.complete("the quick", max_chars=40, on_partial=lambda texts: partials.append(texts[0]))
    assert partials and all(final.startswith(p) for p in partials)


def test_inference_never_imports_tensorflow_nor_the_train_package(tiny_model_dir):
    """The layout's boundary: what the editor runs (loading, completing, scoring, the engine serving
    and learning) lives outside `textgen_core.train`, which alone may import TensorFlow."""
    code = ("import json, sys, textgen_core; from textgen_core.serve.engine import Engine; "
            "from textgen_core.decode import DecodeOptions; m = textgen_core.load_model(sys.argv[1]); "
            "m.complete('the'); m.bits_per_char('the cat', learn=True); e = Engine(m); "
            "e.submit('b', 'the cat sat on the mat ' * 20, DecodeOptions(), lambda c: None, learn=True); "
            "e.wait_idle(60); e.close(); "
            "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'keras') "
            "or k.startswith('textgen_core.train'))))")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert json.loads(out.stdout) == []
