"""The same sampler as `numpy_gru`, as `tf.function`-compiled GRU steps over the same weights.

For users who already run TensorFlow (or a GPU). Takes and returns numpy arrays, so decoding and
the engine do not care which backend they talk to.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from textgen_core.model.config import ModelConfig
from textgen_core.model.files import Weights

State = tuple[np.ndarray, ...]


class TensorFlowGRU:
    name = "tensorflow"

    def __init__(self, config: ModelConfig, weights: Weights) -> None:
        self.config = config
        H = config.hidden
        self._hidden = H
        emb = weights["embedding"]
        b0 = weights["gru0/bias"]
        self._table = tf.constant(emb @ weights["gru0/kernel"] + b0[0])                      # (256, 3H)
        self._kernels = [None] + [tf.constant(weights[f"gru{i}/kernel"]) for i in range(1, config.layers)]
        self._input_biases = [None] + [tf.constant(weights[f"gru{i}/bias"][0]) for i in range(1, config.layers)]
        self._recurrent = [tf.constant(weights[f"gru{i}/recurrent_kernel"]) for i in range(config.layers)]
        self._recurrent_biases = [tf.constant(weights[f"gru{i}/bias"][1]) for i in range(config.layers)]
        self._dense_kernel = tf.constant(weights["dense/kernel"])
        self._dense_bias = tf.constant(weights["dense/bias"])
        state_spec = tuple(tf.TensorSpec([None, H], tf.float32) for _ in range(config.layers))
        self._step = tf.function(self._step_impl, input_signature=[tf.TensorSpec([None], tf.int32), state_spec])
        self._sequence = tf.function(self._sequence_impl,
                                     input_signature=[tf.TensorSpec([None], tf.int32), state_spec])

    def zero_state(self, batch: int = 1) -> State:
        return tuple(np.zeros((batch, self._hidden), np.float32) for _ in range(self.config.layers))

    def _cells(self, x, state):
        H = self._hidden
        new_state = []
        for i, h in enumerate(state):
            if i > 0:
                x = tf.matmul(x, self._kernels[i]) + self._input_biases[i]                    # (B, 3H)
            hp = tf.matmul(h, self._recurrent[i]) + self._recurrent_biases[i]                  # (B, 3H)
            zr = tf.sigmoid(x[:, :2 * H] + hp[:, :2 * H])                                      # (B, 2H)
            cand = tf.tanh(x[:, 2 * H:] + zr[:, H:] * hp[:, 2 * H:])                           # (B, H)
            h = cand + zr[:, :H] * (h - cand)
            new_state.append(h)
            x = h
        return x, tuple(new_state)

    def _step_impl(self, ids, state):
        top, new_state = self._cells(tf.gather(self._table, ids), state)
        return tf.matmul(top, self._dense_kernel) + self._dense_bias, new_state               # (B, 256)

    def _sequence_impl(self, ids, state):
        xs = tf.gather(self._table, ids)[:, None, :]                                            # (T, 1, 3H)

        def body(carry, x):
            top, new_state = self._cells(x, carry[1])
            return top, new_state

        first = tf.zeros_like(state[-1])
        tops, states = tf.scan(body, xs, initializer=(first, state))                           # (T, 1, H)
        final_state = tuple(s[-1] for s in states)
        logits = tf.matmul(tops[:, 0, :], self._dense_kernel) + self._dense_bias               # (T, 256)
        return logits, final_state

    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        logits, new_state = self._step(tf.constant(ids, tf.int32), tuple(tf.constant(h) for h in state))
        return logits.numpy(), tuple(h.numpy() for h in new_state)

    def prime(self, ids: np.ndarray, state: State | None = None, all_logits: bool = False):
        ids = np.asarray(ids, np.int32).reshape(-1)
        if len(ids) == 0:
            raise ValueError("prime needs at least one byte")
        state = state if state is not None else self.zero_state(1)
        logits, new_state = self._sequence(tf.constant(ids), tuple(tf.constant(h) for h in state))
        new_state = tuple(h.numpy() for h in new_state)
        logits = logits.numpy()
        return (logits if all_logits else logits[-1]), new_state
