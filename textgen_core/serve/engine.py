"""The completion engine: one background worker that turns "text before the cursor" into suggestions.

Why it feels instant:
- latest wins: a newer request for the same key (buffer) replaces a pending one and cancels a
  running one between decoding steps, so the worker never works for text that is gone;
- the model reads a bounded window of the context whose start is aligned to the document
  (multiples of `window_step` bytes), so the GRU state for a window prefix can be cached: typing one
  more character costs one GRU step, whatever the size of the buffer or the cursor's place;
- states are cached by the exact bytes they have read (checkpoints every `checkpoint_every` bytes),
  so an edit or a jump reuses the longest unchanged prefix and gives the same result as a fresh start;
- while idle, the worker warms the state of the next window start, so the window sliding forward
  does not cost a full re-read on the keystroke that crosses the boundary;
- results stream: the callback sees the first word as soon as it is known, and the growing text
  before decoding ends;
- for a request with `guesses`, the worker finds ahead the first words of the suggestions for the
  keys the user is likeliest to type instead of the suggestion's first character (`guesses`): a
  request that one of them foresaw shows its first word at once, and decodes only the rest;
- requests that ask to `learn` let the model learn the text they carry (`learning`) while the
  worker is idle, a chunk at a time so that a keystroke waits for one chunk at most.

The worker takes one job at a time: a request to serve, a window to warm, keys to guess, text to
learn, in that order. It is the only thread that touches the caches; callers only enqueue. States
are numpy arrays that are never written after creation.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Callable, Hashable, Sequence

import numpy as np

from textgen_core.decode import DecodeCancelled, DecodeOptions, Leads, decode, decode_leads
from textgen_core.lru import LruCache
from textgen_core.memory.adaptation import LEARNING_RATE
from textgen_core.memory.match import MatchMixer
from textgen_core.memory.ngram import NgramModel
from textgen_core.model.text_model import WINDOW_BYTES, WINDOW_STEP, TextModel, context_window
from textgen_core.model.vocab import encode, to_ids
from textgen_core.serve.guesses import likely_keys, next_context
from textgen_core.serve.learning import LEARN_BLOCK, LEARN_LAG, Learning  # noqa: F401 (LEARN_*: for callers and tests)

log = logging.getLogger(__name__)

State = tuple[np.ndarray, ...]

# GRU states kept (3 KB each with the default model; a window is read in checkpoints of 16 bytes):
# about fifty windows. 4096 took up to 12 MB of the host for no speed measured (−0.01 ms, as the
# n-gram's caches, `memory.ngram.CACHED_CONTEXTS`).
CACHED_STATES = 1024


@dataclass(frozen=True)
class Completion:
    """What the callback receives: growing partial results, then one final result."""

    request_id: int
    key: Hashable
    texts: tuple[str, ...]
    final: bool
    elapsed_ms: float
    error: str | None = None


CompletionCallback = Callable[[Completion], None]


@dataclass
class Request:
    """A job: complete `data` for `key` and call back."""

    id: int
    key: Hashable
    data: bytes          # the context, UTF-8
    end_offset: int      # byte offset of the end of `data` in the whole document
    options: DecodeOptions
    callback: CompletionCallback
    submitted: float
    learn: bool = False
    guesses: int = 0     # next keys to find the suggestions' first words for, once served (`guesses`)
    kind: str | None = None   # the text's kind or filetype: whose mixing weights serve it (`TextModel.for_kind`)


@dataclass(frozen=True)
class WarmJob:
    """A job: prime the state of `window`, the window the next slide of `key`'s context will need."""

    key: Hashable
    window: bytes


@dataclass(frozen=True)
class GuessJob:
    """A job: suggest ahead for the likeliest next keys after `request`, whose answer was `shown`."""

    request: Request
    shown: str


@dataclass(frozen=True)
class LearnJob:
    """A job: learn the text of `request` (`Learning`)."""

    request: Request


Job = Request | WarmJob | GuessJob | LearnJob


class StateCache:
    """GRU states (and next-byte logits) keyed by the exact window bytes read from a zero state."""

    def __init__(self, model: TextModel, checkpoint_every: int, max_entries: int) -> None:
        self.model = model
        self.every = checkpoint_every
        self._entries: LruCache[bytes, tuple[np.ndarray, State]] = LruCache(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: bytes):
        return self._entries.get(key)

    def _put(self, key: bytes, logits: np.ndarray, state: State) -> None:
        self._entries.put(key, (logits, state))

    def longest_prefix(self, window: bytes) -> tuple[int, np.ndarray | None, State | None]:
        """Length of the longest cached prefix of `window` (the last few lengths, then checkpoints)."""
        m = len(window)
        for length in range(m, max(0, m - 8), -1):
            entry = self._get(window[:length])
            if entry is not None:
                return length, entry[0], entry[1]
        for length in range((m - 1) // self.every * self.every, 0, -self.every):
            entry = self._get(window[:length])
            if entry is not None:
                return length, entry[0], entry[1]
        return 0, None, None

    def state_for(self, window: bytes,
                  should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, State] | None:
        """Logits and state after reading `window` from a zero state; checkpoints along the way.

        Returns None when `should_stop()` became true between checkpoints (progress is kept).
        """
        if not window:
            window = b"\n"
        done, logits, state = self.longest_prefix(window)
        backend = self.model.backend
        ids = to_ids(window)
        while done < len(window):
            if should_stop is not None and should_stop():
                return None
            end = min(len(window), (done // self.every + 1) * self.every)
            logits, state = backend.prime(ids[done:end], state)
            done = end
            self._put(window[:done], logits, state)
        return logits, state


class Engine:
    """Serves completion requests on one worker thread; callers never block."""

    def __init__(self, model: TextModel, window_bytes: int = WINDOW_BYTES, window_step: int = WINDOW_STEP,
                 checkpoint_every: int = 16, cache_entries: int = CACHED_STATES, warm: bool = True,
                 learning_rate: float = LEARNING_RATE, context_bytes: int | None = None) -> None:
        """`context_bytes`: how many bytes of context the caller sends at most (whole characters from
        the end, as lua/textgen/context.lua does), so that a guess is the request it will send."""
        if not 0 < window_step <= window_bytes // 2:
            raise ValueError("window_step must be positive and at most half of window_bytes")
        self.window_bytes = window_bytes
        self.window_step = window_step
        self.checkpoint_every = checkpoint_every
        self.cache_entries = cache_entries
        self.warm_enabled = warm
        self.context_bytes = context_bytes
        self._model = model
        self._memories: tuple[tuple[NgramModel, tuple[float, ...]], ...] = ()
        self._mixed: tuple[MatchMixer, tuple, MatchMixer] | None = None     # the worker's: `_mixer_for`
        self._cache: StateCache | None = None
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._pending: OrderedDict[Hashable, Request] = OrderedDict()
        self._latest: dict[Hashable, int] = {}
        self._warm_jobs: OrderedDict[Hashable, WarmJob] = OrderedDict()
        self._learn_jobs: OrderedDict[Hashable, LearnJob] = OrderedDict()
        self._guess_jobs: OrderedDict[Hashable, GuessJob] = OrderedDict()
        # the worker's: the leads it found ahead, by the request it foresaw, with the model and memories
        self._guessed: dict[tuple, tuple[TextModel, tuple, Leads]] = {}
        self._learning = Learning(learning_rate)        # the worker's
        self._learning_now = False
        self._idle = False
        self._closing = False
        self.last_latency_ms: float | None = None
        self.last_kind: str | None = None     # whose mixing weights served the last request (None: the model's)
        self.latencies_ms: deque[float] = deque(maxlen=200)
        self.served = 0
        self.guessed = 0                  # requests whose first words were found ahead
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="textgen-engine", daemon=True)
        self._thread.start()

    # -- caller side ---------------------------------------------------------------------------
    @property
    def model(self) -> TextModel:
        return self._model

    def set_model(self, model: TextModel) -> None:
        """Use `model` from the next request on; states cached for the old model, and what was
        learned on top of it, are dropped, unless `model` is the same network mixed otherwise
        (`TextModel.with_corpus_ngram`): then both stay."""
        if model.backend is not self._model.backend:
            self.last_kind = None                 # it described the old model's weights
        self._model = model

    def set_memories(self, memories: Sequence[tuple[NgramModel, tuple[float, ...]]]) -> None:
        """Mix `memories` (n-grams with their weights: the project's, the open buffers') into every
        suggestion from the next request on, after the model's own; the model, its cached states
        and what it learned stay."""
        self._memories = tuple(memories)

    @property
    def memories(self) -> tuple[tuple[NgramModel, tuple[float, ...]], ...]:
        return self._memories

    @property
    def learned_model(self) -> TextModel | None:
        """The model with the learned weights that answer `learn` requests; None before the first
        `LEARN_BLOCK` bytes are learned."""
        return self._learning.model_for(self._model)

    @property
    def learned_bytes(self) -> int:
        """Bytes the serving weights have learned on top of the model (0: none, or not learning)."""
        return self._learning.learned_bytes(self._model)

    @property
    def learning(self) -> bool:
        """Whether there is text left to learn, or the worker is learning it now."""
        return self._learning_now or bool(self._learn_jobs)

    def learned_up_to(self, key: Hashable) -> int | None:
        """The document offset up to which the text of `key` has been learned; None if none was."""
        return self._learning.learned_up_to(key)

    def submit(self, key: Hashable, context: str, options: DecodeOptions, callback: CompletionCallback,
               end_offset: int | None = None, learn: bool = False, guesses: int = 0, kind: str | None = None) -> int:
        """Queue a completion of `context` for `key`, replacing any older one for that key.

        `end_offset` is the byte offset of the end of `context` in the whole document; give it when
        `context` is only a tail, so that windows stay aligned to the document. With `learn`, the
        suggestion comes from the weights learned so far, and the model learns `context` once idle.
        With `guesses` (one greedy suggestion asked), the worker then finds ahead the first words of
        the suggestions for the likeliest `guesses` next keys other than the suggestion's own. `kind`:
        the kind of text or the filetype, so that the mixing weights fitted on that kind serve it.
        """
        data = encode(context)
        request = Request(id=next(self._ids), key=key, data=data,
                           end_offset=len(data) if end_offset is None else max(end_offset, len(data)),
                           options=options, callback=callback, submitted=time.perf_counter(), learn=learn,
                           guesses=guesses, kind=kind)
        with self._cond:
            if self._closing:
                raise RuntimeError("the engine is closed")
            self._latest[key] = request.id
            self._pending.pop(key, None)
            self._pending[key] = request
            self._cond.notify()
        return request.id

    def cancel(self, key: Hashable) -> None:
        """Forget the pending or running request for `key`; its callback will not be called again."""
        with self._cond:
            self._latest[key] = next(self._ids)
            self._pending.pop(key, None)
            self._warm_jobs.pop(key, None)
            self._guess_jobs.pop(key, None)
            self._learn_jobs.pop(key, None)

    def pending_count(self) -> int:
        with self._cond:
            return len(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the worker has nothing left to do (requests, warming, learning); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._idle or self._has_jobs():
                left = deadline - time.monotonic()
                if left <= 0 or self._closing:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (a running decode is cancelled between steps) and wait for it."""
        with self._cond:
            self._closing = True
            self._pending.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- worker side ---------------------------------------------------------------------------
    def _is_stale(self, request: Request) -> bool:
        return self._closing or self._latest.get(request.key) != request.id

    def _has_jobs(self) -> bool:
        return bool(self._pending or self._warm_jobs or self._guess_jobs or self._learn_jobs)

    def _should_stop(self) -> bool:
        """Whether background work (warming, learning, priming) should give way: a request came, or
        the engine closes."""
        return bool(self._pending) or self._closing

    def _next_job(self) -> Job | None:
        with self._cond:
            while not self._closing and not self._has_jobs():
                self._idle = True
                self._cond.notify_all()
                self._cond.wait()
            self._idle = False
            if self._closing:
                return None
            if self._pending:
                return self._pending.popitem(last=False)[1]
            if self._warm_jobs:
                return self._warm_jobs.popitem(last=False)[1]
            if self._guess_jobs:
                return self._guess_jobs.popitem(last=False)[1]
            self._learning_now = True
            return self._learn_jobs.popitem(last=False)[1]

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            try:
                self._forget_learning_of_an_old_model()
                match job:
                    case Request():
                        self._serve(job)
                    case WarmJob():
                        self._warm(job)
                    case GuessJob():
                        self._guess(job)
                    case LearnJob():
                        try:
                            self._learn(job.request)
                        finally:
                            self._learning_now = False
            except Exception:   # the worker must survive anything a model or callback does
                log.exception("textgen engine: job failed")

    def _cache_for(self, model: TextModel) -> StateCache:
        """The states of `model`'s network: those cached stay valid for a model of the same backend."""
        if self._cache is None or self._cache.model.backend is not model.backend:
            self._cache = StateCache(model, self.checkpoint_every, self.cache_entries)
        return self._cache

    def _mixer_for(self, model: TextModel) -> MatchMixer | None:
        """The model's mixer with the memories mixed in after its own; made once per model and
        memories, not per keystroke."""
        if model.mixer is None:
            return None
        key = (model.mixer, self._memories)
        if self._mixed is None or self._mixed[0] is not key[0] or self._mixed[1] is not key[1]:
            self._mixed = (key[0], key[1], key[0].adding(key[1]))
        return self._mixed[2]

    def _window(self, request: Request) -> bytes:
        """The window of the request's context the model reads (`context_window`)."""
        return context_window(request.data, request.end_offset, self.window_bytes, self.window_step)

    def _serving(self, request: Request) -> TextModel:
        """The model a request is answered with: the learned weights if it asks for them and there
        are any for the current model, mixed by the weights of the request's kind of text."""
        learned = self.learned_model if request.learn else None
        return (learned if learned is not None else self._model).for_kind(request.kind)

    def _serve(self, request: Request) -> None:
        """Answer a request (with the first words a guess found for it, where one did with the same
        model and memories), then queue what the idle time should do for the next one."""
        model = self._serving(request)
        window = self._window(request)
        guessed, self._guessed = self._guessed.get(_guess_key(request)), {}
        leads = guessed[2] if guessed is not None and guessed[0] is model and guessed[1] is self._memories else None
        self.guessed += leads is not None
        stale = lambda: self._is_stale(request)  # noqa: E731
        try:
            texts = self._complete(request, model, window, _PartialEmitter(request, stale), stale, leads)
        except DecodeCancelled:
            return
        except Exception as exc:
            self.errors += 1
            log.exception("textgen engine: completion failed")
            if not self._is_stale(request):
                request.callback(Completion(request.id, request.key, (), True, _ms_since(request.submitted),
                                            error=f"{exc.__class__.__name__}: {exc}"))
            return
        if texts is None or self._is_stale(request):
            return
        elapsed = _ms_since(request.submitted)
        self.last_latency_ms = elapsed
        self.last_kind = model.kind
        self.latencies_ms.append(elapsed)
        self.served += 1
        request.callback(Completion(request.id, request.key, tuple(texts), True, elapsed))
        with self._cond:
            if self._latest.get(request.key) != request.id:
                return
            if self.warm_enabled:
                self._schedule_warm(request, window)
            if request.guesses and request.options.n == 1:
                self._guess_jobs[request.key] = GuessJob(request, texts[0] if texts else "")
            if request.learn:
                self._learn_jobs[request.key] = LearnJob(request)

    def _complete(self, request: Request, model: TextModel, window: bytes, on_partial: Callable | None,
                  should_cancel: Callable[[], bool], leads: Leads | None = None) -> list[str] | None:
        """The request's suggestions from `model` (starting with `leads` where given); None when
        `should_cancel()` came true while priming (DecodeCancelled while decoding)."""
        primed = self._cache_for(model).state_for(window, should_cancel)
        if primed is None:
            return None
        logits, state = primed
        return decode(model.backend, state, logits, replace(request.options, stream_every=1), on_partial=on_partial,
                      should_cancel=should_cancel, memory=request.data or b"\n", mixer=self._mixer_for(model),
                      leads=leads)

    def _guess(self, job: GuessJob) -> None:
        """Find the first words of the suggestions for the likeliest next keys after `job.request`
        (`guesses`): of the requests the editor will send if one of them is typed. Stops as soon as
        a request comes."""
        request = job.request
        if self._is_stale(request):
            return
        model, memories = self._serving(request), self._memories
        window = self._window(request)
        primed = self._cache_for(model).state_for(window, self._should_stop)
        if primed is None:
            return
        for byte in likely_keys(primed[0], self._mixer_for(model), request.data or b"\n", job.shown, request.guesses):
            data = next_context(request.data, byte, self.context_bytes)
            guess = replace(request, data=data, end_offset=request.end_offset + 1)
            primed = self._cache_for(model).state_for(self._window(guess), self._should_stop)
            if primed is None:
                return
            try:
                leads = decode_leads(model.backend, primed[1], primed[0], guess.options, self._should_stop,
                                     data or b"\n", self._mixer_for(model))
            except DecodeCancelled:
                return
            if leads is None or self._should_stop():
                return
            self._guessed[_guess_key(guess)] = (model, memories, leads)

    def _schedule_warm(self, request: Request, window: bytes) -> None:
        """Queue the window the next slide will need: the same end, starting one step later (with
        the lock held)."""
        n = request.end_offset
        if n <= self.window_bytes - self.window_step:
            return
        upcoming = window[self.window_step:]
        if len(upcoming) >= self.checkpoint_every:
            self._warm_jobs[request.key] = WarmJob(request.key, upcoming)

    def _warm(self, job: WarmJob) -> None:
        cache = self._cache                                      # that of the model that served last
        if cache is None:
            return
        usable = len(job.window) // self.checkpoint_every * self.checkpoint_every
        cache.state_for(job.window[:usable], should_stop=self._should_stop)

    def _forget_learning_of_an_old_model(self) -> None:
        """After `set_model`, free what was learned on the old model and its states (worker side)."""
        # States belong to a network: a twin mixed otherwise (`with_corpus_ngram`, `for_kind`) keeps them.
        if (self._learning.follow(self._model) and self._cache is not None
                and self._cache.model.backend is not self._model.backend):
            self._cache = None

    def _learn(self, request: Request) -> None:
        """Learn the request's text until a request comes; serve from the learned weights once they
        are swapped in; go on at the next idle moment if text is left."""
        base = self._model
        learned = self._learning.learn(
            base, request,
            interrupted=lambda: self._should_stop() or self._model is not base,
            primed_cache=lambda weights: self._primed_cache(weights, request))
        if learned.cache is not None:
            self._cache = learned.cache
        elif learned.more and self._model is base and not self._closing:
            with self._cond:                                     # go on once idle again
                self._learn_jobs.setdefault(request.key, LearnJob(request))

    def _primed_cache(self, model: TextModel, request: Request) -> StateCache | None:
        """A state cache for `model` with the request's window primed; None if a request came first."""
        cache = StateCache(model, self.checkpoint_every, self.cache_entries)
        window = self._window(request)
        return cache if cache.state_for(window, should_stop=self._should_stop) is not None else None


# Partial results after the first come at most once a frame at 60 Hz: faster ones would be drawn
# over before anyone saw them, and each costs the host and Neovim a message.
STREAM_INTERVAL_S = 1 / 60


class _PartialEmitter:
    """Forwards growing partial texts to the callback: the first as soon as its first word is whole
    (the decoding's lead, known before any step, or a word and the byte that ends it), so a
    suggestion never shows a few letters of a word that then grow; later ones at most once a frame."""

    def __init__(self, request: Request, is_stale: Callable[[], bool]) -> None:
        self.request = request
        self.is_stale = is_stale
        self.last: tuple[str, ...] = ()
        self.last_time = 0.0

    def __call__(self, texts: list[str]) -> None:
        current = tuple(texts)
        if not current[0].strip() or current == self.last:
            return
        now = time.perf_counter()
        if self.last and now - self.last_time < STREAM_INTERVAL_S:
            return
        if not self.last and _ends_inside_a_word(current[0]):
            return
        if self.is_stale():
            return
        self.last, self.last_time = current, now
        self.request.callback(Completion(self.request.id, self.request.key, current, False,
                                         _ms_since(self.request.submitted)))


def _ends_inside_a_word(text: str) -> bool:
    """Whether the next character could still be part of the last word of `text`."""
    return text[-1].isalnum() or text[-1] == "_"


def _guess_key(request: Request) -> tuple:
    """What a request's answer depends on besides the model and the memories."""
    return request.key, request.data, request.end_offset, request.options, request.learn, request.kind


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def fresh_completion(model: TextModel, context: str, options: DecodeOptions, end_offset: int | None = None,
                     window_bytes: int = WINDOW_BYTES, window_step: int = WINDOW_STEP) -> list[str]:
    """What the engine computes for a request, without any cache: the reference for tests."""
    data = encode(context)
    return model.continue_bytes(data, options, end_offset=end_offset, window_bytes=window_bytes,
                                window_step=window_step)
