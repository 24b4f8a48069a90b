"""Probabilities over the next byte, in one place: softmax, log-softmax, and bits (LN2)."""
from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)            # nats per bit: a loss in nats / LN2 is bits per character


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits along the last axis, without overflow."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities from logits along the last axis, without overflow."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
