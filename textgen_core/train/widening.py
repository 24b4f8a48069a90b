"""Growing a trained model's GRU layers wider without changing a single prediction.

Which size of network the default should be is chosen by training each size for hours (issue 28);
a wider network trained from scratch spends most of those hours relearning what the current one
knows. Grown from it instead, it starts where the current one stands and the hours go to what the
extra units can add.

Every layer gets `hidden − H` new units. Their incoming weights (from the layer's input and from
every unit's state) are drawn at random at a fresh layer's scale (glorot uniform for the input,
normal with deviation 1/√hidden for the recurrent weights); everything that reads them (the other units'
recurrent weights, the next layer's input weights, the output layer) reads them with weight zero.
The old units compute what they did, so the output is the old model's, and `textgen train --base`
goes on from it; the new units' states are not zero, so the first gradient steps move the zero
weights and the new units start to count. (Net2Net, Chen et al. 2016, grows networks the same way
with copied units; zero weights keep the function exact without splitting any.)
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from textgen_core.model.config import ModelConfig, ModelInfo
from textgen_core.model.files import Weights, load_model_folder, read_ngram, save_model_folder
from textgen_core.model.registry import resolve_model_path
from textgen_core.train.averaging import without_file_lists
from textgen_core.train.machine import machine_summary

GATES = 3                     # z, r, h: each a block of `hidden` columns (Keras' GRU, reset_after)


def widen_weights(config: ModelConfig, weights: Weights, hidden: int,
                  rng: np.random.Generator) -> tuple[ModelConfig, Weights]:
    """`weights` of `config` grown to `hidden` units a layer, predicting exactly what they did."""
    old = config.hidden
    if hidden <= old:
        raise ValueError(f"the model has {old} units a layer; widening needs more than that, got {hidden}")
    wide = dataclasses.replace(config, hidden=hidden)
    grown: Weights = {"embedding": weights["embedding"].astype(np.float32)}
    inputs = config.embed_dim
    new = hidden - old
    for i in range(config.layers):
        limit = np.sqrt(6.0 / (inputs + GATES * hidden))           # Keras' glorot uniform for the kernel
        kernel = _gate_columns(weights[f"gru{i}/kernel"], old, hidden,
                               [rng.uniform(-limit, limit, (inputs, new)) for _ in range(GATES)], inputs)
        recurrent = _gate_columns(weights[f"gru{i}/recurrent_kernel"], old, hidden,
                                  [rng.normal(0, 1 / np.sqrt(hidden), (hidden, new)) for _ in range(GATES)], hidden)
        bias = _gate_columns(weights[f"gru{i}/bias"], old, hidden, [np.zeros((2, new))] * GATES, 2)
        grown[f"gru{i}/kernel"], grown[f"gru{i}/recurrent_kernel"], grown[f"gru{i}/bias"] = kernel, recurrent, bias
        inputs = hidden
    dense = np.zeros((hidden, config.vocab_size), np.float32)
    dense[:old] = weights["dense/kernel"]
    grown["dense/kernel"], grown["dense/bias"] = dense, weights["dense/bias"].astype(np.float32)
    return wide, grown


def _gate_columns(array: np.ndarray, old: int, hidden: int, fresh: list[np.ndarray], rows: int) -> np.ndarray:
    """`array` (R, 3·old) laid out for `hidden` units a gate: (rows, 3·hidden), the old columns of
    each gate in its first `old` columns (their rows past R zero: the new inputs are not read), the
    new units' columns `fresh[gate]` (rows, hidden − old) in each gate."""
    out = np.zeros((rows, GATES * hidden), np.float32)
    for gate in range(GATES):
        out[:array.shape[0], gate * hidden:gate * hidden + old] = array[:, gate * old:(gate + 1) * old]
        out[:, gate * hidden + old:(gate + 1) * hidden] = fresh[gate]
    return out


def widen_model(model: str, hidden: int, out: str | Path, seed: int = 0) -> ModelInfo:
    """Write `model` (a name or a folder) grown to `hidden` units a layer as the model folder `out`,
    with its mixing weights, its metrics (its predictions are the same) and its corpus n-gram."""
    path = resolve_model_path(model)
    info, weights = load_model_folder(path)
    config, grown = widen_weights(info.config, weights, hidden, np.random.default_rng(seed))
    widened = ModelInfo(config=config, metrics=dict(info.metrics), match=info.match, ngram=info.ngram, training={
        "widened": {"model": model, "path": str(path), "hidden": [info.config.hidden, hidden], "seed": seed,
                    "training": without_file_lists(info.training)},
        "machine": machine_summary(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    save_model_folder(out, widened, grown, ngram=read_ngram(path))
    return widened
