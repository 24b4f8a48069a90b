"""The fused training GRU computes Keras' GRU: same outputs, same gradients, same weights."""
import numpy as np
import pytest

from textgen_core import ModelConfig
from textgen_core.train.training import TrainOptions, choose_kernel

CONFIG = ModelConfig(embed_dim=24, hidden=40, layers=2)


def _loss_and_gradients(model, x, y):
    import keras
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    return float(loss), [tf.convert_to_tensor(g).numpy() for g in gradients]


def _models(precision="float32", config=CONFIG):
    from textgen_core.train.keras_model import build_keras_model, weights_from_keras, weights_to_keras

    reference = build_keras_model(config)
    rng = np.random.default_rng(0)
    weights = {name: (rng.standard_normal(w.shape) * (0.3 if w.ndim == 1 or name.endswith("bias") else
                                                      1.2 / np.sqrt(w.shape[0]))).astype(np.float32)
               for name, w in weights_from_keras(reference, config).items()}
    weights_to_keras(reference, config, weights)
    fused = build_keras_model(config, fused=True, matmul_dtype=precision)
    weights_to_keras(fused, config, weights)
    return reference, fused, weights


def _batch(steps=37, batch=5):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 256, (batch, steps + 1)).astype(np.int32)
    return ids[:, :-1], ids[:, 1:]


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_fused_gru_gives_keras_outputs_and_gradients(layers):
    from textgen_core.train.keras_model import weights_from_keras

    config = ModelConfig(embed_dim=24, hidden=40, layers=layers)
    reference, fused, weights = _models(config=config)
    x, y = _batch()
    assert np.abs(reference(x).numpy() - fused(x).numpy()).max() < 1e-5            # inference: nothing kept
    assert np.abs(reference(x).numpy() - fused(x, training=True).numpy()).max() < 1e-5
    loss, gradients = _loss_and_gradients(reference, x, y)
    fused_loss, fused_gradients = _loss_and_gradients(fused, x, y)
    assert abs(loss - fused_loss) < 1e-5
    assert len(gradients) == len(fused_gradients) == len(weights)
    for expected, got in zip(gradients, fused_gradients):
        assert expected.shape == got.shape
        assert np.abs(expected - got).max() <= 1e-5 * max(1.0, np.abs(expected).max()), np.abs(expected - got).max()
    saved = weights_from_keras(fused, config)
    assert all(np.array_equal(saved[name], weights[name]) for name in weights)


def test_bfloat16_products_stay_close_to_float32():
    reference, fused, _ = _models("bfloat16")
    x, y = _batch()
    assert np.abs(reference(x).numpy() - fused(x).numpy()).max() < 0.1       # bf16 keeps 8 bits of mantissa
    loss, gradients = _loss_and_gradients(reference, x, y)
    fused_loss, fused_gradients = _loss_and_gradients(fused, x, y)
    assert abs(loss - fused_loss) < 0.02 * loss
    for expected, got in zip(gradients, fused_gradients):
        cosine = np.sum(expected * got) / (np.linalg.norm(expected) * np.linalg.norm(got))
        assert cosine > 0.98, cosine


def test_a_sequence_shorter_than_the_stack_is_refused():
    _, fused, _ = _models()
    with pytest.raises(ValueError, match="at least 2 bytes"):
        fused(np.zeros((3, 1), np.int32))


def test_kernel_choice(monkeypatch):
    import textgen_core.train.training as training

    monkeypatch.setattr(training, "cpu_has_bfloat16", lambda: True)
    assert choose_kernel(TrainOptions(), CONFIG) == {"gru": "fused", "precision": "bfloat16"}
    monkeypatch.setattr(training, "cpu_has_bfloat16", lambda: False)
    assert choose_kernel(TrainOptions(), CONFIG) == {"gru": "fused", "precision": "float32"}
    assert choose_kernel(TrainOptions(precision="bfloat16"), CONFIG) == {"gru": "fused", "precision": "bfloat16"}
    assert choose_kernel(TrainOptions(gru="keras", precision="bfloat16"), CONFIG) == {"gru": "keras",
                                                                                      "precision": "float32"}
    deep = ModelConfig(embed_dim=8, hidden=8, layers=12)       # the wavefront needs a step per layer
    assert choose_kernel(TrainOptions(seq_len=8), deep)["gru"] == "keras"
    with pytest.raises(ValueError):
        choose_kernel(TrainOptions(precision="float16"), CONFIG)
