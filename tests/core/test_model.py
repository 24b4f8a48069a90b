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
    gru = NumpyGRU(config, weights, half_weights=False)     # float32 throughout (float16 matrices: below)
    primed, _ = gru.prime(ids, all_logits=True)
    assert np.abs(primed - expected).max() < 1e-4
    state, stepped = gru.zero_state(1), []
    for byte in ids:
        logits, state = gru.step(np.array([byte]), state)
        stepped.append(logits[0])
    assert np.abs(np.array(stepped) - expected).max() < 1e-4


def _compiled_or_skip(half: bool = False):
    from textgen_core.model import numpy_gru

    if numpy_gru.compiled is None:
        pytest.skip("the compiled GRU step is not built here (test_the_compiled_step_is_built says why)")
    if half and not numpy_gru.compiled.half_supported():
        pytest.skip("this CPU or build has no float16 matrices (AVX2, FMA and F16C, gcc 12 on x86-64)")


# How far the compiled step's numbers may be from numpy's, with its matrices in float32 or float16
# (11 significant bits: about 1e-3 on these random networks, measured over five of them): (logits,
# states) after a step, then after priming 300 bytes. A mistake in the packing or the sums is off by tenths.
TOLERANCE = {False: (1e-4, 1e-5, 1e-4, 1e-5), True: (5e-3, 2e-3, 1e-2, 5e-3)}


@pytest.mark.parametrize("half", [False, True], ids=["float32", "float16"])
@pytest.mark.parametrize("rows", [1, 3, 4, 9, 17])
def test_the_compiled_step_gives_numpys_numbers_and_each_row_those_it_has_alone(rows, half):
    """A suggestion's steps go to `_gru_step.c` where it is built: the numpy step's numbers to the last
    bits (to float16's precision with its matrices in float16), and a row's the same whatever rows step
    beside it (the search steps its beams together). 17 rows are more than the helper takes: numpy's
    matrix products, the same numbers again."""
    _compiled_or_skip(half)
    config = ModelConfig(embed_dim=16, hidden=70, layers=3)     # 3 × 70 columns: blocks of 64, of 8, and 2 alone
    _, weights = _random_keras_model(config)
    compiled = NumpyGRU(config, weights, half_weights=half)
    plain = NumpyGRU(config, weights, compiled_steps=False)
    assert compiled.half_weights == half
    ids = np.arange(rows, dtype=np.int32) * 29 % 256
    state = tuple(np.random.default_rng(2).standard_normal((rows, 70)).astype(np.float32) * 0.5 for _ in range(3))
    logits, new_state = compiled.step(ids, state)
    expected_logits, expected_state = plain.step(ids, state)
    logit_bound, state_bound, *_ = TOLERANCE[half and rows <= 16]
    assert np.abs(logits - expected_logits).max() < logit_bound
    assert all(np.abs(a - b).max() < state_bound for a, b in zip(new_state, expected_state))
    if rows <= 16:
        for row in range(rows):
            alone, alone_state = compiled.step(ids[row:row + 1], tuple(h[row:row + 1] for h in state))
            assert np.array_equal(alone[0], logits[row])
            assert all(np.array_equal(a[0], b[row]) for a, b in zip(alone_state, new_state))


@pytest.mark.parametrize("half", [False, True], ids=["float32", "float16"])
def test_the_compiled_prime_is_its_steps_one_after_another_and_numpys_numbers(half):
    """A window's priming (the first suggestion at a new place) runs byte after byte in C: the very
    state and logits that stepping byte by byte gives (the engine steps from cached states), and
    numpy's layer-by-layer priming's to the last bits (to float16's precision, with its matrices so)."""
    _compiled_or_skip(half)
    config = ModelConfig(embed_dim=16, hidden=70, layers=2)
    _, weights = _random_keras_model(config)
    compiled = NumpyGRU(config, weights, half_weights=half)
    plain = NumpyGRU(config, weights, compiled_steps=False)
    *_, prime_bound, state_bound = TOLERANCE[half]
    ids = np.random.default_rng(3).integers(0, 256, 300).astype(np.int32)
    start = tuple(np.random.default_rng(4).standard_normal((1, 70)).astype(np.float32) * 0.5 for _ in range(2))
    logits, state = compiled.prime(ids, start)
    stepped_state = start
    for byte in ids:
        stepped, stepped_state = compiled.step(np.array([byte], np.int32), stepped_state)
    assert np.array_equal(logits, stepped[0]) and all(np.array_equal(a, b) for a, b in zip(state, stepped_state))
    expected_logits, expected_state = plain.prime(ids, start)
    assert np.abs(logits - expected_logits).max() < prime_bound
    assert all(np.abs(a - b).max() < state_bound for a, b in zip(state, expected_state))
    assert compiled._numpy_matrices is None                           # the helper's copy alone, until asked
    every, _ = compiled.prime(ids, start, all_logits=True)           # every byte's logits: numpy's products
    assert every.shape == (300, 256) and np.abs(every[-1] - logits).max() < prime_bound


def test_the_compiled_step_refuses_what_does_not_fit_its_network():
    """The helper reads the arrays it is given as raw floats: one that does not fit is refused with
    a ValueError, never read past its end."""
    _compiled_or_skip()
    from textgen_core.model import numpy_gru

    config = ModelConfig(embed_dim=8, hidden=16, layers=2)
    _, weights = _random_keras_model(config)
    gru = NumpyGRU(config, weights)
    network = gru._network
    state = gru.zero_state(2)
    fresh = (np.empty((2, 16), np.float32), np.empty((2, 16), np.float32))
    logits = np.empty((2, 256), np.float32)
    ids = np.array([1, 2], np.int32)
    network.step(ids, state, fresh, logits)                             # fits
    for bad in [dict(ids=np.array([1, 300], np.int32)), dict(ids=np.array([1, 2, 3], np.int32)),
                dict(state=(state[0], np.zeros((2, 15), np.float32))), dict(state=state[:1]),
                dict(state=(state[0], state[1].astype(np.float64))), dict(logits=np.empty((2, 255), np.float32)),
                dict(fresh=(fresh[0], np.empty((2, 16), np.float32)[:, ::-1]))]:
        args = {"ids": ids, "state": state, "fresh": fresh, "logits": logits, **bad}
        with pytest.raises((ValueError, BufferError)):
            network.step(args["ids"], args["state"], args["fresh"], args["logits"])
    one = gru.zero_state(1)
    network.prime(ids, one, tuple(np.empty((1, 16), np.float32) for _ in one), np.empty((1, 256), np.float32))
    for bad_ids, bad_state in [(np.array([], np.int32), one), (ids, state)]:     # no bytes; two rows
        with pytest.raises(ValueError):
            network.prime(bad_ids, bad_state, fresh, logits)
    with pytest.raises(ValueError, match="memory of their own"):     # writing over what it reads
        network.step(ids, state, state, logits)
    with pytest.raises(ValueError, match="memory of their own"):
        network.step(ids, state, (fresh[0], fresh[0]), logits)
    unmade = numpy_gru.compiled.Network.__new__(numpy_gru.compiled.Network)
    with pytest.raises(ValueError):                                  # never given its weights
        unmade.step(ids, (), (), np.empty(0, np.float32))
    kernels, recurrent, dense_kernel = NumpyGRU(config, weights, compiled_steps=False)._matrices()
    with pytest.raises(ValueError):                                  # its making failed half way
        unmade.__init__(gru.input_table, ((None, None, recurrent[0], gru.candidate_biases[0]),
                                          (kernels[1], gru.input_biases[1], recurrent[1][:-1],
                                           gru.candidate_biases[1])), dense_kernel, gru.dense_bias, 16)
    with pytest.raises(ValueError, match="no weights"):
        unmade.step(ids, state, fresh, logits)
    with pytest.raises(ValueError):
        numpy_gru.compiled.Network(gru.input_table[:-1], ((None, None, recurrent[0], gru.candidate_biases[0]),),
                                   dense_kernel, gru.dense_bias, 16)


def test_the_compiled_step_is_built_where_there_is_a_c_compiler():
    """`pip install` (make install) builds the GRU step where gcc and the Python headers are there;
    without them (or with TEXTGEN_PURE_PYTHON=1) every step runs in numpy."""
    import os
    import shutil
    import sysconfig
    from pathlib import Path

    from textgen_core.model import numpy_gru

    if shutil.which("gcc") and (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        assert numpy_gru.compiled is not None, "make install should have built textgen_core/model/_gru_step"
    code = ("from textgen_core.model import numpy_gru; from textgen_core import ModelConfig; import numpy as np\n"
            "config = ModelConfig(embed_dim=8, hidden=16, layers=1)\n"
            "weights = {k: np.zeros(v, np.float32) for k, v in config.weight_shapes().items()}\n"
            "print(numpy_gru.compiled is None, numpy_gru.NumpyGRU(config, weights)._network is None)\n"
            "try:\n numpy_gru.NumpyGRU(config, weights, compiled_steps=True)\n"
            "except ValueError as e:\n print(e)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "TEXTGEN_PURE_PYTHON": "1"})
    assert run.stdout.splitlines() == ["True True", "the compiled helper (_gru_step) is not built"], run.stderr


def test_the_compiled_step_keeps_float16_matrices_where_the_cpu_can_unless_told_not_to():
    """By default the helper keeps float16 matrices where the CPU has AVX2, FMA and F16C (read from
    /proc/cpuinfo here, as the helper asks the CPU itself); TEXTGEN_FLOAT32_STEPS=1 keeps float32."""
    import os
    from pathlib import Path

    from textgen_core.model import numpy_gru

    _compiled_or_skip()
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    cpu_can = {"avx2", "fma", "f16c"} <= flags
    if flags and numpy_gru.compiled.half_supported() != cpu_can:
        assert not numpy_gru.compiled.half_supported(), "float16 matrices on a CPU without AVX2, FMA or F16C"
        pytest.skip("this build has no float16 kernels (gcc 12 or later on x86-64 Linux builds them)")
    code = ("from textgen_core.model import numpy_gru; from textgen_core import ModelConfig; import numpy as np\n"
            "config = ModelConfig(embed_dim=8, hidden=16, layers=2)\n"
            "weights = {k: np.zeros(v, np.float32) for k, v in config.weight_shapes().items()}\n"
            "print(numpy_gru.NumpyGRU(config, weights).half_weights)")
    for env, expected in (({}, numpy_gru.compiled.half_supported()), ({"TEXTGEN_FLOAT32_STEPS": "1"}, False)):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                             env={**{k: v for k, v in os.environ.items() if k != "TEXTGEN_FLOAT32_STEPS"}, **env})
        assert run.stdout.split() == [str(expected)], run.stderr


def test_a_network_with_weights_float16_cannot_hold_keeps_float32_matrices():
    """float16's largest number is 65504: larger weights would become infinities."""
    _compiled_or_skip(half=True)
    config = ModelConfig(embed_dim=8, hidden=16, layers=2)
    _, weights = _random_keras_model(config)
    assert NumpyGRU(config, weights, half_weights=True).half_weights
    weights["gru1/recurrent_kernel"][0, 0] = 3e5                 # ½ of it after folding: still too large
    assert not NumpyGRU(config, weights, half_weights=True).half_weights


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
