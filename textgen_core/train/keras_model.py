"""The Keras 3 model used for training, and moving its weights to and from plain named arrays."""
from __future__ import annotations

import keras
import numpy as np

from textgen_core.model.config import ModelConfig
from textgen_core.model.files import Weights
from textgen_core.train.fused_gru import FusedGRU


def build_keras_model(config: ModelConfig, stateful_batch: int | None = None, fused: bool = False,
                      matmul_dtype: str = "float32") -> keras.Model:
    """Embedding(256, E) → GRU(H) × L → Dense(256) logits, on int byte ids (B, T).

    `fused` builds the same function with one `FusedGRU` for all the GRU layers (training only:
    faster, not stateful); its matrix products, and the output layer's, take `matmul_dtype` operands.
    """
    inputs = keras.Input(shape=(None,), dtype="int32", batch_size=stateful_batch, name="bytes")
    if fused:
        x = keras.layers.Embedding(config.vocab_size, config.embed_dim, name="embedding")(
            keras.ops.transpose(inputs))                                                       # (T, B, E)
        x = FusedGRU(config.hidden, config.layers, matmul_dtype, name="grus")(x)                # (T, B, H)
        x = keras.ops.transpose(x, (1, 0, 2))                                                  # (B, T, H)
    else:
        x = keras.layers.Embedding(config.vocab_size, config.embed_dim, name="embedding")(inputs)  # (B, T, E)
        for i in range(config.layers):
            x = keras.layers.GRU(config.hidden, return_sequences=True, reset_after=True,
                                 name=f"gru{i}")(x)                                               # (B, T, H)
    dense_dtype = "mixed_bfloat16" if fused and matmul_dtype == "bfloat16" else "float32"
    logits = keras.layers.Dense(config.vocab_size, name="dense", dtype=dense_dtype)(x)          # (B, T, 256)
    return keras.Model(inputs, keras.ops.cast(logits, "float32"), name="char_gru")


def weights_from_keras(model: keras.Model, config: ModelConfig) -> Weights:
    """The model's weights as named float32 arrays (the model-file layout)."""
    weights: Weights = {"embedding": _np(model.get_layer("embedding").get_weights()[0])}
    for i in range(config.layers):
        kernel, recurrent, bias = (np.asarray(v) for v in _gru_variables(model, i))
        weights[f"gru{i}/kernel"] = _np(kernel)
        weights[f"gru{i}/recurrent_kernel"] = _np(recurrent)
        weights[f"gru{i}/bias"] = _np(bias)
    kernel, bias = model.get_layer("dense").get_weights()
    weights["dense/kernel"] = _np(kernel)
    weights["dense/bias"] = _np(bias)
    return weights


def weights_to_keras(model: keras.Model, config: ModelConfig, weights: Weights) -> None:
    """Load named arrays into a model built by `build_keras_model` with the same config."""
    model.get_layer("embedding").set_weights([weights["embedding"]])
    for i in range(config.layers):
        for variable, name in zip(_gru_variables(model, i), ("kernel", "recurrent_kernel", "bias")):
            variable.assign(weights[f"gru{i}/{name}"])
    model.get_layer("dense").set_weights([weights["dense/kernel"], weights["dense/bias"]])


def _gru_variables(model: keras.Model, i: int):
    """Layer i's (kernel, recurrent_kernel, bias) variables, in a GRU layer of its own or in the fused one."""
    if any(layer.name == "grus" for layer in model.layers):
        return model.get_layer("grus").layer_weights(i)
    layer = model.get_layer(f"gru{i}")
    return tuple(layer.weights)


def _np(array) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32))
