"""The char-GRU forward pass in plain numpy: the editor's default backend (no TensorFlow import).

Same math as Keras 3 `GRU(reset_after=True)`, gate order (z, r, h):
    z = σ(x·Wz + bz + h·Uz + cz)    r = σ(x·Wr + br + h·Ur + cr)
    h̃ = tanh(x·Wh + bh + r ⊙ (h·Uh + ch))    h' = z ⊙ h + (1 − z) ⊙ h̃
The first layer's input projection is folded into the embedding: one (256, 3H) table lookup.
States are tuples of (B, H) float32 arrays that are never written to after creation, so they can be
cached and shared between threads.
"""
from __future__ import annotations

import numpy as np

from .config import ModelConfig
from .modelfile import Weights

State = tuple[np.ndarray, ...]

PRIME_CHUNK = 2048


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # σ(x) = ½·tanh(x/2) + ½: one transcendental, no overflow warnings for large |x|.
    return np.tanh(x * 0.5) * 0.5 + 0.5


class NumpyGRU:
    """Batch forward steps and whole-context priming over read-only float32 weights."""

    name = "numpy"

    def __init__(self, config: ModelConfig, weights: Weights) -> None:
        self.config = config
        H = config.hidden
        f32 = np.float32
        emb = weights["embedding"].astype(f32)                                   # (256, E)
        b0 = weights["gru0/bias"].astype(f32)                                    # (2, 3H)
        self.input_table = np.ascontiguousarray(emb @ weights["gru0/kernel"] + b0[0])  # (256, 3H)
        self.kernels: list[np.ndarray | None] = [None]
        self.input_biases: list[np.ndarray | None] = [None]
        self.recurrent: list[np.ndarray] = []
        self.recurrent_biases: list[np.ndarray] = []
        for i in range(config.layers):
            bias = weights[f"gru{i}/bias"].astype(f32)
            if i > 0:
                self.kernels.append(np.ascontiguousarray(weights[f"gru{i}/kernel"], dtype=f32))  # (H, 3H)
                self.input_biases.append(np.ascontiguousarray(bias[0]))
            self.recurrent.append(np.ascontiguousarray(weights[f"gru{i}/recurrent_kernel"], dtype=f32))  # (H, 3H)
            self.recurrent_biases.append(np.ascontiguousarray(bias[1]))
        self.dense_kernel = np.ascontiguousarray(weights["dense/kernel"], dtype=f32)  # (H, 256)
        self.dense_bias = np.ascontiguousarray(weights["dense/bias"], dtype=f32)      # (256,)
        self._hidden = H
        for array in (self.input_table, self.dense_kernel, self.dense_bias, *self.recurrent):
            array.flags.writeable = False

    # -- state ---------------------------------------------------------------------------------
    def zero_state(self, batch: int = 1) -> State:
        return tuple(np.zeros((batch, self._hidden), np.float32) for _ in range(self.config.layers))

    # -- one step for a batch ------------------------------------------------------------------
    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feed one byte per row: ids (B,) → logits (B, 256) and the new state."""
        H = self._hidden
        x = self.input_table[ids]                                  # (B, 3H)
        new_state = []
        for i, h in enumerate(state):
            if i > 0:
                x = x @ self.kernels[i] + self.input_biases[i]     # (B, 3H)
            hp = h @ self.recurrent[i] + self.recurrent_biases[i]  # (B, 3H)
            zr = _sigmoid(x[:, :2 * H] + hp[:, :2 * H])            # (B, 2H)
            z, r = zr[:, :H], zr[:, H:]
            cand = np.tanh(x[:, 2 * H:] + r * hp[:, 2 * H:])       # (B, H)
            h = cand + z * (h - cand)                              # (B, H)
            new_state.append(h)
            x = h
        logits = x @ self.dense_kernel + self.dense_bias           # (B, 256)
        return logits, tuple(new_state)

    # -- a whole context at once ---------------------------------------------------------------
    def prime(self, ids: np.ndarray, state: State | None = None,
              all_logits: bool = False) -> tuple[np.ndarray, State]:
        """Feed a sequence ids (T,) with batch 1, layer by layer, input projections as one matmul.

        Returns the logits after the last byte (256,) — or for every byte (T, 256) with
        `all_logits` — and the state after the sequence. Long inputs go in chunks to bound memory.
        """
        ids = np.asarray(ids, dtype=np.int32).reshape(-1)
        if state is None:
            state = self.zero_state(1)
        if len(ids) == 0:
            raise ValueError("prime needs at least one byte")
        outputs = []
        for start in range(0, len(ids), PRIME_CHUNK):
            top, state = self._prime_chunk(ids[start:start + PRIME_CHUNK], state)
            outputs.append(top if all_logits else top[-1:])
        if all_logits:
            top = np.concatenate(outputs, axis=0)                  # (T, H)
            return top @ self.dense_kernel + self.dense_bias, state  # (T, 256)
        return (outputs[-1] @ self.dense_kernel + self.dense_bias)[0], state  # (256,)

    def _prime_chunk(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        H = self._hidden
        T = len(ids)
        xs = self.input_table[ids]                                 # (T, 3H)
        new_state = []
        seq = None
        for i, h in enumerate(state):
            if i > 0:
                xs = seq @ self.kernels[i] + self.input_biases[i]  # (T, 3H)
            R, c = self.recurrent[i], self.recurrent_biases[i]
            seq = np.empty((T, H), np.float32)                     # (T, H)
            for t in range(T):
                x = xs[t:t + 1]                                    # (1, 3H)
                hp = h @ R + c                                     # (1, 3H)
                zr = _sigmoid(x[:, :2 * H] + hp[:, :2 * H])
                cand = np.tanh(x[:, 2 * H:] + zr[:, H:] * hp[:, 2 * H:])
                h = cand + zr[:, :H] * (h - cand)                  # (1, H)
                seq[t] = h[0]
            new_state.append(h)
        return seq, tuple(new_state)
