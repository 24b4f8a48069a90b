"""Learning as you type, for the engine's worker: what the model learned from the text of `learn`
requests, and the learned weights that answer them.

The text of each key (buffer) is learned once, a chunk (`adaptation.CHUNK`) at a time, as it stands
`LEARN_LAG` bytes behind the cursor; every `LEARN_BLOCK` bytes the learned weights replace the ones
that serve, once the state of the request's window is primed for them. Only the engine's worker
thread calls in here; other threads only read the properties.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Hashable

from textgen_core.memory.adaptation import CHUNK, LEARNING_RATE, OnlineLearner
from textgen_core.model.vocab import to_ids

if TYPE_CHECKING:
    from textgen_core.model.text_model import TextModel
    from textgen_core.serve.engine import Request, StateCache

# Bytes learned between two swaps of the weights that serve (each swap drops the cached states and
# primes the window again, 14 ms): held-out keystrokes saved, Python / prose / Lua, with 256: 52.6 /
# 40.1 / 43.0 %, 64: 52.9 / 40.1 / 43.3 %, 32: 53.1 / 40.1 / 43.4 % (`bench/quality.py`).
LEARN_BLOCK = 64
# Bytes read (without learning) before the first chunk of a stretch, so that it starts from a state.
LEARN_LEAD_IN = 64
# The last bytes before the cursor are not learned yet: a typo there is likely to be backspaced.
LEARN_LAG = 16


@dataclass(frozen=True)
class Learned:
    """What one turn of learning came to: the primed state cache of newly swapped-in weights (None:
    no swap), and whether text is left to learn at the next idle moment."""

    cache: "StateCache | None" = None
    more: bool = False


class Learning:
    """The learner, the weights that serve, and how far the text of each key is learned."""

    def __init__(self, learning_rate: float = LEARNING_RATE) -> None:
        self.learning_rate = learning_rate
        self._learner: OnlineLearner | None = None
        self._base: TextModel | None = None              # the model the learner learns on top of
        self._adapted: TextModel | None = None           # the learned weights that serve
        # per key: the document offset learned up to, and the CHUNK bytes before it (None: none yet)
        self._learned: dict[Hashable, tuple[int, bytes | None]] = {}
        self._at: tuple[Hashable, int] | None = None      # where the learner's state stands
        self._swapped_steps = 0                          # the learner's steps in `_adapted`

    def model_for(self, base: TextModel) -> TextModel | None:
        """The learned weights on top of `base`; None before the first `LEARN_BLOCK` bytes are learned."""
        return self._adapted if self._base is base else None

    def learned_bytes(self, base: TextModel) -> int:
        """Bytes the serving weights have learned on top of `base` (0: none)."""
        return self._swapped_steps * CHUNK if self.model_for(base) is not None else 0

    def learned_up_to(self, key: Hashable) -> int | None:
        """The document offset up to which the text of `key` has been learned; None if none was."""
        seen = self._learned.get(key)
        return None if seen is None else seen[0]

    def follow(self, model: TextModel) -> bool:
        """Forget what was learned on another model than `model`; True if something was forgotten. The
        same network mixed otherwise (`TextModel.with_corpus_ngram`: its backend is the base's) keeps
        what was learned, mixed as `model` is."""
        if self._base is model:
            return False
        if self._base is not None and self._base.backend is model.backend:
            if self._adapted is not None:
                self._adapted = self._adapted.with_corpus_ngram(model.ngram)
            self._base = model
            return False
        self._learner = self._base = self._adapted = self._at = None
        self._learned.clear()
        self._swapped_steps = 0
        return True

    def learn(self, base: TextModel, request: Request, interrupted: Callable[[], bool],
              primed_cache: Callable[[TextModel], "StateCache | None"]) -> Learned:
        """Learn the request's text from where learning its key stopped, a chunk at a time until
        `interrupted()`; once `LEARN_BLOCK` bytes are learned, swap in the new weights when
        `primed_cache(weights)` primes their state in time. Only the numpy backend learns (a TensorFlow
        model would be rebuilt and retraced at every swap)."""
        if base.backend.name != "numpy":
            return Learned()
        if self._learner is None or self._base is not base:
            self.follow(base)
            self._learner, self._base = OnlineLearner(base.config, base.weights, self.learning_rate), base
        learner, data, key = self._learner, request.data, request.key
        start = request.end_offset - len(data)                   # the document offset of data[0]
        end = request.end_offset - LEARN_LAG
        done = self._resume_point(key, data, start, end)
        if end - done > CHUNK and not interrupted():
            if self._at != (key, done):                          # not where the last chunk ended
                learner.reset_state()
                self._at = None
                if learner.read(to_ids(data[max(0, done - start - LEARN_LEAD_IN):done - start]), interrupted):
                    self._at = (key, done)
            # A request that comes mid-step drops the step (`OnlineLearner.learn`): it waits for one
            # byte's work, not a chunk's.
            while self._at == (key, done) and end - done > CHUNK and not interrupted():
                if learner.learn(to_ids(data[done - start:done - start + CHUNK + 1]), interrupted) is None:
                    break
                done += CHUNK
                self._learned[key] = (done, bytes(data[done - start - CHUNK:done - start]))
                self._at = (key, done)
        swap_due = (learner.steps - self._swapped_steps) * CHUNK >= LEARN_BLOCK
        if not interrupted() and swap_due:
            adapted, steps = base.with_weights(learner.weights()), learner.steps
            cache = primed_cache(adapted)
            if cache is not None:
                self._adapted, self._swapped_steps = adapted, steps
                return Learned(cache=cache)
        return Learned(more=end - done > CHUNK or swap_due)

    def _resume_point(self, key: Hashable, data: bytes, start: int, end: int) -> int:
        """Where learning the key's text goes on: where it stopped, found by the bytes just before
        it (at its offset, or further down after an insert above); from the context's start while nothing of
        the key is learned; from the cursor after a jump below. Above what was learned (the cursor
        went back up) nothing is learned, so that no text is learned twice."""
        seen = self._learned.get(key)
        if seen is None or seen[1] is None:
            first = start if seen is None else max(seen[0], start)
            self._learned[key] = (first, None)
            return first
        done, tail = seen
        at = done - start
        if not (at >= CHUNK and data[at - CHUNK:at] == tail):
            found = bytes(data).find(tail, max(0, at - CHUNK))     # an insert above moves it down
            if found >= 0:
                done = start + found + CHUNK
            elif end > done:                                     # jumped below it: from the cursor
                at = end - start
                self._learned[key] = (end, bytes(data[at - CHUNK:at]) if at >= CHUNK else None)
                return end
        return min(done, max(end, start))
