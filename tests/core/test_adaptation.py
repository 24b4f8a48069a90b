"""Learning from the text as it is written: the gradient is TensorFlow's, learning lowers the loss,
and the engine learns only while idle, serves the learned weights only to requests that ask, and
drops them with the model."""

import numpy as np
import pytest

from tests.nvim_harness import wait_for
from textgen_core.decode import DecodeOptions
from textgen_core.memory.adaptation import CHUNK, OnlineLearner
from textgen_core.model.config import ModelConfig
from textgen_core.model.vocab import to_ids
from textgen_core.serve.engine import LEARN_BLOCK, LEARN_LAG, Engine, fresh_completion

from .test_engine import Collector

OPTIONS = DecodeOptions(max_chars=30)
LUA = ("local function greet(name)\n  return 'hello ' .. name\nend\n\n"
       "local function count(items)\n  local n = 0\n  for _ in pairs(items) do n = n + 1 end\n  return n\nend\n\n") * 8


def _random_weights(config: ModelConfig, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    shapes = {"embedding": (256, config.embed_dim), "dense/kernel": (config.hidden, 256), "dense/bias": (256,)}
    for i in range(config.layers):
        width = config.embed_dim if i == 0 else config.hidden
        shapes |= {f"gru{i}/kernel": (width, 3 * config.hidden),
                   f"gru{i}/recurrent_kernel": (config.hidden, 3 * config.hidden),
                   f"gru{i}/bias": (2, 3 * config.hidden)}
    return {name: rng.normal(0, 0.3, shape).astype(np.float32) for name, shape in shapes.items()}


def test_the_gradient_is_tensorflows():
    import tensorflow as tf

    from textgen_core.train.keras_model import _gru_variables, build_keras_model, weights_to_keras

    config = ModelConfig(embed_dim=8, hidden=16, layers=2)
    weights = _random_weights(config)
    ids = to_ids(b"local x = vim.fn.line('.') + 1\n")
    grads, probs, _ = OnlineLearner(config, weights).gradients(ids[:-1], ids[1:])

    model = build_keras_model(config)
    weights_to_keras(model, config, weights)
    named = {"embedding": model.get_layer("embedding").embeddings,
             "dense/kernel": model.get_layer("dense").kernel, "dense/bias": model.get_layer("dense").bias}
    for i in range(config.layers):
        named |= dict(zip((f"gru{i}/kernel", f"gru{i}/recurrent_kernel", f"gru{i}/bias"), _gru_variables(model, i)))
    with tf.GradientTape() as tape:
        logits = model(ids[None, :-1])[0]
        expected_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ids[1:], logits))
    expected = tape.gradient(expected_loss, list(named.values()))
    assert -np.log(probs).mean() == pytest.approx(float(expected_loss), rel=1e-5)
    for (name, _), grad in zip(named.items(), expected):
        np.testing.assert_allclose(grads[name], tf.convert_to_tensor(grad).numpy(), atol=1e-5, err_msg=name)


def test_learning_a_text_lowers_its_loss_and_leaves_the_given_weights_alone():
    config = ModelConfig(embed_dim=8, hidden=16, layers=2)
    weights = _random_weights(config, seed=1)
    before = {name: array.copy() for name, array in weights.items()}
    learner = OnlineLearner(config, weights, learning_rate=0.1)
    ids = to_ids(LUA.encode()[:CHUNK + 1])
    losses = []
    for _ in range(30):
        learner.reset_state()
        losses.append(-np.log(learner.learn(ids)).mean())
    assert losses[-1] < 0.8 * losses[0]
    assert all(np.array_equal(weights[name], before[name]) for name in weights)


def _stop_after(calls: int):
    """A `should_stop` that says stop at its `calls`-th question and every one after."""
    asked = []

    def should_stop() -> bool:
        asked.append(None)
        return len(asked) >= calls
    return should_stop


def test_a_step_asked_to_stop_midway_changes_nothing_and_the_next_one_learns_the_same():
    """A learning step takes longer than a keystroke should wait: one asked to stop, in its forward
    or its backward pass, is dropped with nothing changed, and learning on gives what it would have."""
    config = ModelConfig(embed_dim=8, hidden=16, layers=2)
    weights = _random_weights(config, seed=2)
    ids = to_ids(LUA.encode())
    for calls in (1, 2, CHUNK, 2 * CHUNK + 1, 4 * CHUNK):      # forward passes: 2 × CHUNK bytes, then backward
        learner, uninterrupted = OnlineLearner(config, weights), OnlineLearner(config, weights)
        learner.read(ids[:CHUNK]), uninterrupted.read(ids[:CHUNK])
        learner.learn(ids[CHUNK:2 * CHUNK + 1]), uninterrupted.learn(ids[CHUNK:2 * CHUNK + 1])
        params = {name: array.copy() for name, array in learner.params.items()}
        state = [h.copy() for h in learner.state]
        assert learner.learn(ids[2 * CHUNK:3 * CHUNK + 1], should_stop=_stop_after(calls)) is None, calls
        assert learner.steps == 1 and all(np.array_equal(learner.params[n], params[n]) for n in params), calls
        assert all(np.array_equal(a, b) for a, b in zip(learner.state, state)), calls
        for learning in (learner, uninterrupted):
            assert learning.learn(ids[2 * CHUNK:3 * CHUNK + 1], should_stop=lambda: False) is not None
        for name in params:
            np.testing.assert_array_equal(learner.params[name], uninterrupted.params[name], err_msg=name)
        np.testing.assert_array_equal(learner.state[-1], uninterrupted.state[-1])
    learner = OnlineLearner(config, weights)
    assert learner.read(ids[:CHUNK], should_stop=_stop_after(CHUNK + 1)) is False
    assert all(not h.any() for h in learner.state)                     # the state it had: none read
    assert learner.read(ids[:CHUNK], should_stop=_stop_after(2 * CHUNK + 1)) is True


def _ask(engine, context, learn, key="buf", then=None):
    collector = Collector()

    def callback(completion):
        collector(completion)
        if completion.final and then is not None:
            then()

    engine.submit(key, context, OPTIONS, callback, learn=learn)
    return collector


def test_the_engine_learns_while_idle_and_serves_what_it_learned_only_when_asked(tiny_model):
    engine = Engine(tiny_model, learning_rate=0.1)       # enough to change what a tiny model says
    try:
        context = LUA[:600]
        _ask(engine, context, learn=True).wait_finals(1)
        assert engine.wait_idle(30)
        learned = engine.learned_model
        assert learned is not None and engine.learned_bytes >= LEARN_BLOCK
        assert not np.array_equal(learned.weights["gru0/kernel"], tiny_model.weights["gru0/kernel"])
        contexts = (LUA[:610], LUA[:200] + "local n", LUA[:150] + "local function c")
        assert any(fresh_completion(learned, c, OPTIONS) != fresh_completion(tiny_model, c, OPTIONS) for c in contexts)
        for context in contexts:
            asked = _ask(engine, context, learn=True).wait_finals(1)[0]
            assert list(asked.texts) == fresh_completion(learned, context, OPTIONS)
            plain = _ask(engine, context, learn=False).wait_finals(1)[0]
            assert list(plain.texts) == fresh_completion(tiny_model, context, OPTIONS)
    finally:
        engine.close()


def test_a_request_that_comes_while_the_engine_learns_is_served_before_learning_ends(tiny_model):
    engine = Engine(tiny_model)
    try:
        long_text = LUA * 12                                # about 500 chunks to learn
        _ask(engine, long_text, learn=True).wait_finals(1)
        wait_for(lambda: (engine.learned_up_to("buf") or 0) >= 2 * CHUNK, what="learning to start")
        learned_when_answered = []
        answered = Collector()
        engine.submit("other", "local x = ", OPTIONS,
                      lambda c: (learned_when_answered.append(engine.learned_up_to("buf")), answered(c)))
        answered.wait_finals(1)
        assert learned_when_answered[-1] < len(long_text) - LEARN_LAG - CHUNK    # learning had not ended
        assert engine.wait_idle(60)
        assert engine.learned_up_to("buf") > len(long_text) - LEARN_LAG - 2 * CHUNK
    finally:
        engine.close()


def test_typing_on_learns_what_one_pass_over_the_text_learns(tiny_model):
    """Requests every few bytes, learning between them: the weights that serve are those of one
    uninterrupted pass of 32-byte chunks over the typed text (each byte learned once, the state
    carried from chunk to chunk)."""
    engine = Engine(tiny_model)
    try:
        for end in range(37, 1200, 37):
            _ask(engine, LUA[:end], learn=True).wait_finals(1)
            assert engine.wait_idle(30)
        steps = engine.learned_bytes // CHUNK
        assert steps * CHUNK >= len(LUA[:end]) - LEARN_LAG - LEARN_BLOCK - CHUNK
        offline = OnlineLearner(tiny_model.config, tiny_model.weights)
        ids = to_ids(LUA.encode())
        for step in range(steps):
            offline.learn(ids[step * CHUNK:(step + 1) * CHUNK + 1])
        for name, array in engine.learned_model.weights.items():
            np.testing.assert_array_equal(array, offline.params[name], err_msg=name)
    finally:
        engine.close()


def test_learning_stopped_in_the_middle_of_its_steps_learns_what_one_pass_learns(tiny_model):
    """Each turn of learning stopped a few bytes into a step (a keystroke came): the steps are taken
    again at the next turn, and in the end the weights are those of one uninterrupted pass."""
    from textgen_core.serve.engine import Request
    from textgen_core.serve.learning import Learning

    data = LUA.encode()[:700]
    request = Request(1, "buf", data, len(data), OPTIONS, lambda c: None, 0.0, learn=True)
    learning, turns = Learning(), 0
    while (learning.learned_up_to("buf") or 0) + CHUNK < len(data) - LEARN_LAG and turns < 400:
        turns += 1
        learning.learn(tiny_model, request, interrupted=_stop_after(2 + turns % 7 * 50),
                       primed_cache=lambda model: None)
    steps = learning._learner.steps
    # A step asks about 4 × CHUNK times (2 layers forward, then back): turns stopped at their 52nd or
    # 102nd question dropped one; those stopped later took one or two.
    assert turns > 7 and steps > 10 and steps * CHUNK >= len(data) - LEARN_LAG - 2 * CHUNK
    offline = OnlineLearner(tiny_model.config, tiny_model.weights)
    ids = to_ids(data)
    for step in range(steps):
        offline.learn(ids[step * CHUNK:(step + 1) * CHUNK + 1])
    for name, array in learning._learner.params.items():
        np.testing.assert_array_equal(array, offline.params[name], err_msg=name)


def test_edits_above_and_going_back_up_learn_nothing_twice(tiny_model):
    engine = Engine(tiny_model)
    try:
        def ask(context):
            _ask(engine, context, learn=True).wait_finals(1)
            assert engine.wait_idle(30)

        ask(LUA[:900])
        first = engine.learned_up_to("buf")
        assert 900 - LEARN_LAG - CHUNK <= first <= 900 - LEARN_LAG
        inserted = "-- a new first line\n"                       # everything below moves down
        ask(inserted + LUA[:1100])
        assert engine.learned_up_to("buf") > first + len(inserted)        # went on where it stopped
        ask(inserted + LUA[:300])                                         # back up the buffer
        edited = inserted + LUA[:200] + "x = 1\n" + LUA[200:]              # an edit above, back at the end
        ask(edited)
        final = len(edited)
        assert engine.learned_up_to("buf") > final - LEARN_LAG - CHUNK
        assert final - len(inserted) - LEARN_LAG - LEARN_BLOCK - 2 * CHUNK <= engine.learned_bytes <= final - LEARN_LAG
    finally:
        engine.close()


def test_a_new_model_drops_what_was_learned(tiny_model, tmp_path):
    from tests.conftest import train_tiny_model
    from textgen_core import load_model

    engine = Engine(tiny_model)
    try:
        _ask(engine, LUA[:600], learn=True).wait_finals(1)
        assert engine.wait_idle(30) and engine.learned_bytes > 0
        other = load_model(train_tiny_model(tmp_path / "other", steps=50))
        engine.set_model(other)
        assert engine.learned_model is None and engine.learned_bytes == 0
        asked = _ask(engine, LUA[:300], learn=True).wait_finals(1)[0]
        assert list(asked.texts) == fresh_completion(other, LUA[:300], OPTIONS)
    finally:
        engine.close()


def test_what_was_learned_fades_back_toward_the_models_own_weights():
    config = ModelConfig(embed_dim=8, hidden=16, layers=1)
    weights = _random_weights(config, seed=2)
    learner = OnlineLearner(config, weights, learning_rate=0.0, decay=0.1)
    learner.params["dense/bias"] += 1.0
    for _ in range(10):
        learner.learn(to_ids(b"end\nend\n"))
    np.testing.assert_allclose(learner.params["dense/bias"] - weights["dense/bias"], 0.9 ** 10, rtol=1e-4)


def test_learning_while_reading_predicts_a_repeated_text_better_than_the_model_alone(tiny_model):
    from textgen_core.memory.adaptation import learning_target_probs

    data = ("\n" + LUA).encode()
    learning = learning_target_probs(tiny_model.config, tiny_model.weights, data, learning_rate=0.05)
    plain = tiny_model.target_probs(data)
    assert learning.shape == plain.shape
    np.testing.assert_allclose(learning[:CHUNK], plain[:CHUNK], rtol=1e-4)     # nothing learned yet
    assert -np.log2(learning).mean() < -np.log2(plain).mean() - 0.1


def test_the_same_model_with_its_counted_corpus_ngram_keeps_what_was_learned(tiny_model):
    """A corpus n-gram counted after the model was loaded (`memory.corpus_ngram`) is served without
    losing what the engine learned: the same network, mixed with the table."""
    from textgen_core.memory.ngram import build_ngram

    engine = Engine(tiny_model)
    try:
        _ask(engine, LUA[:600], learn=True).wait_finals(1)
        assert engine.wait_idle(30) and engine.learned_bytes > 0
        learned, learned_bytes = engine.learned_model, engine.learned_bytes
        table = build_ngram(LUA.encode() * 2, orders=(1, 2, 4, 8))
        with_table = tiny_model.with_corpus_ngram(table)
        assert with_table.backend is tiny_model.backend and with_table.mixer.ngram is table
        engine.set_model(with_table)
        asked = _ask(engine, LUA[:300], learn=True).wait_finals(1)[0]
        assert engine.learned_bytes >= learned_bytes
        served = engine.learned_model
        assert served.ngram is table and served.backend is learned.backend
        assert list(asked.texts) == fresh_completion(learned.with_corpus_ngram(table), LUA[:300], OPTIONS)
    finally:
        engine.close()
