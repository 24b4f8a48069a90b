"""Learning from the text as it is written (dynamic evaluation): plain SGD steps on the GRU's own
weights over what the person has typed, so that the model drifts toward this text's names, idioms
and language.

A char-GRU trained on Python, Lua and prose mixes them up (`if md_cms` → ` is not None:` in a Lua
file); the match model and the word votes repeat what the buffer already holds, but do not learn its
style. One SGD step per 32 bytes written does (`bench/quality.py`, held-out files, Python / prose /
Lua): bits per character 1.155 / 1.496 / 1.400 → 1.055 / 1.419 / 1.352, keystrokes saved 51.0 / 38.2
/ 42.6 → 52.9 / 40.1 / 43.3 % (the engine swapping weights every 64 bytes; see `learning.LEARN_BLOCK`).
Learning rates 0.02 and 0.03 saved about the same and a little less.

The forward pass keeps what the backward pass needs; the backward pass is truncated at each chunk
(the state carries over, its gradient does not). Same math as `numpy_gru` (Keras' `GRU(reset_after=
True)`, gates z, r, h), on unfolded float32 weights that only the learner writes; `weights()` hands
out a copy for a backend to fold.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from textgen_core.model.config import ModelConfig
from textgen_core.model.files import Weights
from textgen_core.model.probabilities import softmax
from textgen_core.model.vocab import to_ids

CHUNK = 32
LEARNING_RATE = 0.01
# Each step also pulls the weights this much back toward the model's own, so that what was learned
# fades over about 2048 steps (64 KB written) and hours of typing cannot drift the model anywhere.
DECAY = 1 / 2048


class OnlineLearner:
    """The GRU's weights, trained a chunk at a time on the text being written."""

    def __init__(self, config: ModelConfig, weights: Weights, learning_rate: float = LEARNING_RATE,
                 decay: float = DECAY) -> None:
        self.config = config
        self.learning_rate = learning_rate
        self.decay = decay
        self.base = weights                                       # read, never written
        self.params = {name: np.array(array, dtype=np.float32) for name, array in weights.items()}
        self.state = [np.zeros(config.hidden, np.float32) for _ in range(config.layers)]
        self.steps = 0

    def reset_state(self) -> None:
        """Forget the text read so far (the next chunk does not follow the last one)."""
        self.state = [np.zeros_like(h) for h in self.state]

    def weights(self) -> Weights:
        return {name: array.copy() for name, array in self.params.items()}

    def read(self, ids: np.ndarray, should_stop: Callable[[], bool] | None = None) -> bool:
        """Advance the state over `ids` without learning (the text before the part to learn); False,
        the state unchanged, if `should_stop()` said so on the way."""
        if len(ids):
            forward = self._forward(np.asarray(ids, np.int32), keep=False, should_stop=should_stop)
            if forward is None:
                return False
            self.state = forward[1]
        return True

    def learn(self, ids: np.ndarray, should_stop: Callable[[], bool] | None = None) -> np.ndarray | None:
        """One SGD step on predicting ids[1:] from ids[:-1] (from the carried state); returns the
        probabilities the model gave ids[1:] before the step. The state moves on to after ids[:-1].

        A step takes ~13 ms (2×256 GRU, AMD EPYC), longer than a keystroke should wait: with
        `should_stop`, asked at every byte of it, the step is dropped as soon as it says so, nothing
        changed, and None is returned."""
        ids = np.asarray(ids, np.int32)
        if len(ids) < 2:
            raise ValueError("learn needs at least two bytes")
        inputs, targets = ids[:-1], ids[1:]
        computed = self.gradients(inputs, targets, should_stop)
        if computed is None:
            return None
        grads, probs, state = computed
        for name, grad in grads.items():
            param = self.params[name]
            param -= self.learning_rate * grad
            if self.decay:
                param += self.decay * (self.base[name] - param)
        self.state = state
        self.steps += 1
        return probs

    def gradients(self, inputs: np.ndarray, targets: np.ndarray, should_stop: Callable[[], bool] | None = None,
                  ) -> tuple[dict[str, np.ndarray], np.ndarray, list] | None:
        """The gradient of the mean cross-entropy (nats) over one chunk, the probabilities of the
        targets and the state after the chunk; None if `should_stop()` said so on the way."""
        p, H, T = self.params, self.config.hidden, len(inputs)
        forward = self._forward(inputs, keep=True, should_stop=should_stop)
        if forward is None:
            return None
        tops, state, caches = forward
        probs = softmax(tops @ p["dense/kernel"] + p["dense/bias"])                # (T, 256)
        rows = np.arange(T)
        target_probs = probs[rows, targets].copy()
        dlogits = probs
        dlogits[rows, targets] -= 1.0
        dlogits /= T
        grads = {"dense/kernel": tops.T @ dlogits, "dense/bias": dlogits.sum(axis=0)}
        dseq = dlogits @ p["dense/kernel"].T                                        # (T, H)
        for i in reversed(range(self.config.layers)):
            xs, hs, z, r, c, hp_h = caches[i]
            kernel, recurrent = p[f"gru{i}/kernel"], p[f"gru{i}/recurrent_kernel"]
            dxp = np.empty((T, 3 * H), np.float32)
            dhp = np.empty((T, 3 * H), np.float32)
            carry = np.zeros(H, np.float32)
            for t in reversed(range(T)):
                if should_stop is not None and should_stop():
                    return None
                dh = dseq[t] + carry
                dz = dh * (hs[t] - c[t]) * z[t] * (1 - z[t])
                dc = dh * (1 - z[t]) * (1 - c[t] * c[t])
                dr = dc * hp_h[t] * r[t] * (1 - r[t])
                dxp[t, :H], dxp[t, H:2 * H], dxp[t, 2 * H:] = dz, dr, dc
                dhp[t, :H], dhp[t, H:2 * H], dhp[t, 2 * H:] = dz, dr, dc * r[t]
                carry = dh * z[t] + recurrent @ dhp[t]
            grads[f"gru{i}/kernel"] = xs.T @ dxp
            grads[f"gru{i}/recurrent_kernel"] = hs.T @ dhp
            grads[f"gru{i}/bias"] = np.stack([dxp.sum(axis=0), dhp.sum(axis=0)])
            dseq = dxp @ kernel.T                                                   # (T, E or H)
        embedding = np.zeros_like(p["embedding"])
        np.add.at(embedding, inputs, dseq)
        grads["embedding"] = embedding
        return grads, target_probs, state

    def _forward(self, ids: np.ndarray, keep: bool, should_stop: Callable[[], bool] | None = None):
        """The top layer's outputs (T, H), the state after `ids`, and (with `keep`) per layer what
        backward needs: inputs, previous states, z, r, the candidate and the recurrent candidate term;
        None if `should_stop()` said so on the way."""
        p, H, T = self.params, self.config.hidden, len(ids)
        seq = p["embedding"][ids]                                                   # (T, E)
        caches, state = [], []
        for i, h in enumerate(self.state):
            bias = p[f"gru{i}/bias"]
            xp = seq @ p[f"gru{i}/kernel"] + bias[0]                                # (T, 3H)
            recurrent, recurrent_bias = p[f"gru{i}/recurrent_kernel"], bias[1]
            hs = np.empty((T, H), np.float32)
            outs = np.empty((T, H), np.float32)
            zs, rs, cs, hhs = (np.empty((T, H), np.float32) for _ in range(4))
            for t in range(T):
                if should_stop is not None and should_stop():
                    return None
                hs[t] = h
                hp = h @ recurrent + recurrent_bias
                z = _sigmoid(xp[t, :H] + hp[:H])
                r = _sigmoid(xp[t, H:2 * H] + hp[H:2 * H])
                c = np.tanh(xp[t, 2 * H:] + r * hp[2 * H:])
                h = z * h + (1 - z) * c
                outs[t], zs[t], rs[t], cs[t], hhs[t] = h, z, r, c, hp[2 * H:]
            if keep:
                caches.append((seq, hs, zs, rs, cs, hhs))
            state.append(h)
            seq = outs
        return seq, state, caches


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * v) + 0.5


def learning_target_probs(config: ModelConfig, weights: Weights, data: bytes,
                          learning_rate: float = LEARNING_RATE) -> np.ndarray:
    """The GRU's probability of each byte data[1:] (N - 1,) while it learns `data` as it reads it:
    each chunk is predicted with what the chunks before it taught (dynamic evaluation)."""
    if len(data) < 2:
        raise ValueError("learning_target_probs needs at least two bytes")
    learner = OnlineLearner(config, weights, learning_rate)
    ids = to_ids(bytes(data))
    return np.concatenate([learner.learn(ids[start:start + CHUNK + 1])
                           for start in range(0, len(ids) - 1, CHUNK)])
