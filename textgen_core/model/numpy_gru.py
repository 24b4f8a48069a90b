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
A step of a few rows (the next-word search's beams) multiplies them one row at a time where this
machine's BLAS does that faster (`_rows_one_at_a_time_pays`); each row's numbers are then those
it would have alone.
"""
from __future__ import annotations

import time

import numpy as np

from textgen_core.model.config import ModelConfig
from textgen_core.model.files import Weights

State = tuple[np.ndarray, ...]

PRIME_CHUNK = 2048
# A step of 2..FEW_ROWS rows may multiply them one row at a time; from 8 rows on the matrix product
# wins even on the machine that showed the difference (AMD EPYC, AVX2).
FEW_ROWS = 7
# Networks this wide or wider are timed at load; narrower ones (the tests' tiny models) keep the
# matrix product without looking at a clock.
TIMED_FROM_HIDDEN = 128


class NumpyGRU:
    """Batch forward steps and whole-context priming over read-only float32 weights."""

    name = "numpy"

    def __init__(self, config: ModelConfig, weights: Weights, rows_one_at_a_time: bool | None = None) -> None:
        """`rows_one_at_a_time`: whether steps of 2..FEW_ROWS rows multiply them one row at a time;
        None: timed at load where the network is wide enough (`_rows_one_at_a_time_pays`)."""
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
        if rows_one_at_a_time is None:
            rows_one_at_a_time = H >= TIMED_FROM_HIDDEN and _rows_one_at_a_time_pays(self.recurrent[0])
        self.rows_one_at_a_time = rows_one_at_a_time
        self._few_rows_product = _rows_one_at_a_time if rows_one_at_a_time else np.matmul

    # -- state ---------------------------------------------------------------------------------
    def zero_state(self, batch: int = 1) -> State:
        return tuple(np.zeros((batch, self._hidden), np.float32) for _ in range(self.config.layers))

    # -- one step for a batch ------------------------------------------------------------------
    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feed one byte per row: ids (B,) → logits (B, 256) and the new state."""
        x = self.input_table[ids]                                  # (B, 3H), a fresh array
        times = self._few_rows_product if 2 <= len(ids) <= FEW_ROWS else np.matmul
        new_state = []
        for i, h in enumerate(state):
            if i > 0:
                x = times(x, self.kernels[i])
                x += self.input_biases[i]
            h = self._cell(x, times(h, self.recurrent[i]), h, self.candidate_biases[i])
            new_state.append(h)
            x = h
        logits = times(x, self.dense_kernel)
        logits += self.dense_bias
        return logits, tuple(new_state)

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
                xs = seq @ self.kernels[i]                         # (T, 3H)
                xs += self.input_biases[i]
            R, c = self.recurrent[i], self.candidate_biases[i]
            seq = np.empty((T, H), np.float32)                     # (T, H)
            for t in range(T):
                h = self._cell(xs[t:t + 1], h @ R, h, c)           # (1, H); xs is ours to overwrite
                seq[t] = h[0]
            new_state.append(h)
        return seq, tuple(new_state)


def _rows_one_at_a_time(rows: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """rows (B, K) @ weight (K, N) as B matrix-vector products (a stack of (1, K) rows), each row's
    result the same as if it were multiplied alone: a fresh (B, N) array."""
    return np.matmul(rows[:, None, :], weight)[:, 0, :]


def _rows_one_at_a_time_pays(weight: np.ndarray, rows: int = 3, tries: int = 3) -> bool:
    """Whether `rows` rows times `weight` go clearly faster (by a quarter) one row at a time than as
    one matrix product on this machine's BLAS: the best of `tries` rounds after one that warms both
    up, alternating; about 1 ms.

    Measured rather than assumed: OpenBLAS's general kernel copies (packs) the whole matrix for each
    product, so 2 or 3 rows cost 2.5 times what they cost one at a time (a 256 × 768 matrix: 70 and
    96 µs against 28 and 38, AMD EPYC, AVX2), where OpenBLAS's kernels for small matrices (built for
    AVX-512 cores) need no copy: hence a clock, not a rule. Where the two are even, the matrix
    product is kept, so that two processes on one machine choose alike."""
    sample = np.linspace(-1, 1, rows * weight.shape[0], dtype=np.float32).reshape(rows, -1)
    best = {np.matmul: float("inf"), _rows_one_at_a_time: float("inf")}
    for _ in range(tries + 1):
        for product in best:
            started = time.perf_counter()
            product(sample, weight)
            best[product] = min(best[product], time.perf_counter() - started)
    return best[_rows_one_at_a_time] * 1.25 < best[np.matmul]


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
