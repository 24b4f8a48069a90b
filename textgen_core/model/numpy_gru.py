"""The char-GRU forward pass in plain numpy: the editor's default backend (no TensorFlow import).

Same math as Keras 3 `GRU(reset_after=True)`, gate order (z, r, h):
    z = σ(x·Wz + bz + h·Uz + cz)    r = σ(x·Wr + br + h·Ur + cr)
    h̃ = tanh(x·Wh + bh + r ⊙ (h·Uh + ch))    h' = z ⊙ h + (1 − z) ⊙ h̃
The first layer's input projection is folded into the embedding: one (256, 3H) table lookup.
The z and r columns of every weight and bias are stored pre-scaled by ½ (σ(v) = ½·tanh(v/2) + ½) and
their recurrent biases folded into the input side, and updates happen in place: fewer numpy calls
(1–3% per step measured; at these sizes the matrix-vector products take most of the time).
States are tuples of (B, H) float32 arrays that are never written to after creation, so they can be
cached and shared between threads.
A step of up to `COMPILED_ROWS` rows (a suggestion's steps: one row, or the next-word search's few
beams) is one call into the optional compiled helper where it is built (`_gru_step.c`): a step of
one row 81 µs instead of 129, of four 145 instead of 344 (AMD EPYC, bench/RESULTS.md); its
numbers differ from numpy's in the last bits only. `TEXTGEN_PURE_PYTHON=1` turns it off.
"""
from __future__ import annotations

import os

import numpy as np

from textgen_core.model.config import ModelConfig
from textgen_core.model.files import Weights

try:
    from textgen_core.model import _gru_step as compiled
except ImportError:                        # not built (no C compiler): every step in numpy
    compiled = None
if os.environ.get("TEXTGEN_PURE_PYTHON"):
    compiled = None

State = tuple[np.ndarray, ...]

PRIME_CHUNK = 2048
# Steps of at most this many rows go to the compiled helper; larger batches (held-out bits per
# character over many sequences at once) are matrix products, which BLAS does well.
COMPILED_ROWS = 16


class NumpyGRU:
    """Batch forward steps and whole-context priming over read-only float32 weights."""

    name = "numpy"

    def __init__(self, config: ModelConfig, weights: Weights, compiled_steps: bool | None = None) -> None:
        """`compiled_steps`: whether steps of up to `COMPILED_ROWS` rows go to the compiled helper;
        None: where it is built (and `TEXTGEN_PURE_PYTHON` is not set)."""
        self.config = config
        H = config.hidden
        f32 = np.float32
        half_zr = np.ones(3 * H, f32)
        half_zr[:2 * H] = 0.5                                                   # scales the z, r columns
        zr_only = np.ones(3 * H, f32)
        zr_only[2 * H:] = 0.0
        self.kernels: list[np.ndarray | None] = [None]
        self.input_biases: list[np.ndarray | None] = [None]
        self.recurrent: list[np.ndarray] = []
        self.candidate_biases: list[np.ndarray] = []
        for i in range(config.layers):
            bias = weights[f"gru{i}/bias"].astype(f32)                           # (2, 3H): input, recurrent
            input_bias = (bias[0] + bias[1] * zr_only) * half_zr                 # z, r recurrent biases moved here
            if i == 0:
                emb = weights["embedding"].astype(f32, copy=False)               # (256, E)
                table = emb @ weights["gru0/kernel"].astype(f32, copy=False)
                table *= half_zr
                table += input_bias
                self.input_table = _frozen(table, ours=True)
            else:
                self.kernels.append(_scaled(weights[f"gru{i}/kernel"], half_zr))                   # (H, 3H)
                self.input_biases.append(_frozen(input_bias, ours=True))
            self.recurrent.append(_scaled(weights[f"gru{i}/recurrent_kernel"], half_zr))           # (H, 3H)
            self.candidate_biases.append(_frozen(bias[1, 2 * H:]))                                  # (H,)
        self.dense_kernel = _frozen(weights["dense/kernel"])                      # (H, 256)
        self.dense_bias = _frozen(weights["dense/bias"])                          # (256,)
        self._hidden = H
        if compiled_steps and compiled is None:
            raise ValueError("the compiled helper (_gru_step) is not built")
        self._network = None
        if compiled is not None and compiled_steps is not False:
            layers = tuple(zip(self.kernels, self.input_biases, self.recurrent, self.candidate_biases))
            self._network = compiled.Network(self.input_table, layers, self.dense_kernel, self.dense_bias, H)
        self.compiled_steps = self._network is not None

    # -- state ---------------------------------------------------------------------------------
    def zero_state(self, batch: int = 1) -> State:
        return tuple(np.zeros((batch, self._hidden), np.float32) for _ in range(self.config.layers))

    # -- one step for a batch ------------------------------------------------------------------
    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feed one byte per row: ids (B,) → logits (B, 256) and the new state."""
        if self._network is not None and len(ids) <= COMPILED_ROWS:
            return self._compiled_step(ids, state)
        x = self.input_table[ids]                                  # (B, 3H), a fresh array
        new_state = []
        for i, h in enumerate(state):
            if i > 0:
                x = x @ self.kernels[i]
                x += self.input_biases[i]
            h = self._cell(x, h @ self.recurrent[i], h, self.candidate_biases[i])
            new_state.append(h)
            x = h
        logits = x @ self.dense_kernel
        logits += self.dense_bias
        return logits, tuple(new_state)

    def _compiled_step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """`step` by the compiled helper, into fresh arrays."""
        rows = len(ids)
        new_state = tuple(np.empty((rows, self._hidden), np.float32) for _ in state)
        logits = np.empty((rows, 256), np.float32)
        state = tuple(np.ascontiguousarray(h, np.float32) for h in state)
        self._network.step(np.ascontiguousarray(ids, np.int32), state, new_state, logits)
        return logits, new_state

    def _cell(self, x: np.ndarray, hp: np.ndarray, h: np.ndarray, candidate_bias: np.ndarray) -> np.ndarray:
        """One GRU update from the input and recurrent projections x, hp (B, 3H), both fresh arrays
        that it overwrites; returns the new h (B, H)."""
        H = self._hidden
        gates = x[:, :2 * H]
        gates += hp[:, :2 * H]
        np.tanh(gates, out=gates)
        gates *= 0.5
        gates += 0.5                                               # z | r = σ(...)
        reset = hp[:, 2 * H:]
        reset += candidate_bias
        reset *= gates[:, H:]                                      # r ⊙ (h·Uh + ch)
        cand = x[:, 2 * H:]
        cand += reset
        np.tanh(cand, out=cand)                                    # h̃
        new = h - cand
        new *= gates[:, :H]
        new += cand                                                # h̃ + z ⊙ (h − h̃)
        return new

    # -- a whole context at once ---------------------------------------------------------------
    def prime(self, ids: np.ndarray, state: State | None = None,
              all_logits: bool = False) -> tuple[np.ndarray, State]:
        """Feed a sequence ids (T,) with batch 1, layer by layer, input projections as one matmul.

        Returns the logits after the last byte (256,) — or for every byte (T, 256) with
        `all_logits` — and the state after the sequence. Long inputs go in chunks to bound memory.
        Where the compiled helper is built, the last byte's logits alone come from it, byte after
        byte (a window of 320 bytes in about a third less time: layer by layer, numpy's calls per
        byte cost more than the input projections it does at once save).
        """
        ids = np.asarray(ids, dtype=np.int32).reshape(-1)
        if state is None:
            state = self.zero_state(1)
        if len(ids) == 0:
            raise ValueError("prime needs at least one byte")
        if self._network is not None and not all_logits:
            new_state = tuple(np.empty((1, self._hidden), np.float32) for _ in state)
            logits = np.empty((1, 256), np.float32)
            state = tuple(np.ascontiguousarray(h, np.float32) for h in state)
            self._network.prime(np.ascontiguousarray(ids), state, new_state, logits)
            return logits[0], new_state
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
                xs = seq @ self.kernels[i]                         # (T, 3H)
                xs += self.input_biases[i]
            R, c = self.recurrent[i], self.candidate_biases[i]
            seq = np.empty((T, H), np.float32)                     # (T, H)
            for t in range(T):
                h = self._cell(xs[t:t + 1], h @ R, h, c)           # (1, H); xs is ours to overwrite
                seq[t] = h[0]
            new_state.append(h)
        return seq, tuple(new_state)


def _frozen(array: np.ndarray, ours: bool = False) -> np.ndarray:
    """A contiguous float32 array that nobody can write to (weights are shared between threads): a
    copy, unless `ours` says that no one else holds `array` (computed here, contiguous float32)."""
    if not ours:
        array = np.array(array, dtype=np.float32, order="C")
    array.flags.writeable = False
    return array


def _scaled(weight: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """`weight` with each column multiplied by `columns`' factor, as a frozen float32 array of its own
    (one pass over the weights, which a model's load makes a dozen of)."""
    return _frozen(np.multiply(weight, columns, dtype=np.float32), ours=True)
