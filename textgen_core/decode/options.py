"""How to continue a context (`DecodeOptions`), and what decoding needs of a backend."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np


class Backend(Protocol):
    name: str

    def zero_state(self, batch: int = 1) -> tuple[np.ndarray, ...]: ...

    def step(self, ids: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]: ...

    def prime(self, ids: np.ndarray, state=None, all_logits: bool = False): ...


class DecodeCancelled(Exception):
    """Raised inside decoding when the caller's `should_cancel()` says the result is no longer wanted."""


@dataclass(frozen=True)
class DecodeOptions:
    """How to continue a context; the defaults give one deterministic greedy line."""

    max_chars: int = 80
    stop_at_newline: bool = True
    stop_at_word_end: bool = False
    temperature: float = 0.0          # 0: greedy (or beam search when beam_width > 1)
    top_k: int = 0                    # 0: no top-k cut
    top_p: float = 1.0                # 1: no nucleus cut
    seed: int | None = None
    n: int = 1                        # alternatives; greedy: the buffer's words, the next most useful words, samples
    beam_width: int = 1
    word_beam: int = 4                # > 1: greedy text starts with the most useful next word (most_useful_next_words)
    alt_temperature: float = 0.7      # temperature of the sampled alternatives when temperature is 0
    stream_every: int = 4             # bytes between partial results

    def __post_init__(self) -> None:
        if self.max_chars < 0 or self.n < 1 or self.beam_width < 1:
            raise ValueError("max_chars must be ≥ 0, n and beam_width ≥ 1")
        if not 0 <= self.temperature < math.inf or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError("temperature must be a finite number ≥ 0, top_p in (0, 1], top_k ≥ 0")


PartialCallback = Callable[[list[str]], None]
