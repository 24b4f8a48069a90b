"""Fitting the weights of a two-part mixture, one weight per bucket of positions: the buffer-as-memory
models (`match`, `word_votes`) each mix their prediction into the model's probabilities this way."""
from __future__ import annotations

import numpy as np


def fit_bucket_weights(base_probs: np.ndarray, other_probs: np.ndarray, buckets: np.ndarray,
                       defaults: tuple[float, ...], max_weight: float, steps: int,
                       min_count: int = 20) -> tuple[float, ...]:
    """Per bucket b, the weight w in [0, max_weight] that maximises the likelihood of the text under
    (1 − w) · base + w · other at the positions where `buckets` == b (all arrays (N,)); the
    log-likelihood is concave in w, so a grid of `steps` points finds it. Buckets seen fewer than
    `min_count` times (and positions of bucket −1) keep `defaults`."""
    grid = np.linspace(0.0, max_weight, steps)                                       # (G,)
    weights = list(defaults)
    for b in range(len(defaults)):
        mask = buckets == b
        if mask.sum() < min_count:
            continue
        p, q = base_probs[mask][None, :], other_probs[mask][None, :]                 # (1, M)
        loglik = np.log((1 - grid[:, None]) * p + grid[:, None] * q + 1e-300).sum(axis=1)   # (G,)
        weights[b] = float(grid[int(np.argmax(loglik))])
    return tuple(weights)
