"""A loaded model: the Python API of DESIGN.md (`load_model`, `.complete`, `.bits_per_char`)."""
from __future__ import annotations

import copy
import os
import weakref
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from textgen_core.decode import Backend, DecodeOptions, PartialCallback, decode
from textgen_core.memory.adaptation import learning_target_probs
from textgen_core.memory.match import MatchMixer
from textgen_core.memory.ngram import NgramModel
from textgen_core.model.config import ModelInfo
from textgen_core.model.files import Weights, load_model_folder, read_ngram
from textgen_core.model.numpy_gru import NumpyGRU
from textgen_core.model.probabilities import log_softmax
from textgen_core.model.registry import resolve_model_path
from textgen_core.model.text_kinds import kind_of
from textgen_core.model.vocab import encode, to_ids

BACKENDS = ("numpy", "tensorflow")
# The GRU reads at most WINDOW_BYTES of context (it forgets what lies further back anyway); the
# window starts at a multiple of WINDOW_STEP so that the engine can cache states. The match model
# sees the whole context.
WINDOW_BYTES = 320
WINDOW_STEP = 64
BPC_CHUNK = 65536


def make_backend(name: str, info: ModelInfo, weights: Weights) -> Backend:
    """The sampler backend by name; TensorFlow is imported only when asked for."""
    if name == "numpy":
        return NumpyGRU(info.config, weights)
    if name == "tensorflow":
        from textgen_core.model.tf_backend import TensorFlowGRU
        return TensorFlowGRU(info.config, weights)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def context_window(data: bytes, end_offset: int, window_bytes: int, window_step: int) -> bytes:
    """The bytes the model reads: at most `window_bytes`, starting at a multiple of `window_step`
    counted from the start of the document, so the start moves only every `window_step` bytes."""
    if end_offset <= window_bytes:
        start = 0
    else:
        start = -(-(end_offset - window_bytes) // window_step) * window_step    # ceil to the step
    keep = end_offset - start
    return data[max(0, len(data) - keep):]


if TYPE_CHECKING:
    from textgen_core.memory.project import ProjectMemory


class TextModel:
    """A char-GRU ready to continue text; immutable after loading, safe to share between threads."""

    def __init__(self, info: ModelInfo, weights: Weights, backend: str = "numpy",
                 path: Path | None = None, use_match: bool = True, ngram: NgramModel | None = None,
                 project: ProjectMemory | None = None) -> None:
        """`use_match=False`: the GRU alone, without the buffer or the n-grams mixed in."""
        self.info = info
        self.path = path
        self.weights = weights                       # read-only: backends fold their own copies
        self.ngram = ngram
        self.project = project
        self.backend: Backend = make_backend(backend, info, weights)
        self.mixer: MatchMixer | None = _mixer(info, ngram, project) if use_match else None
        self.kind: str | None = None                  # the kind of text its mixing weights were fitted on
        # `for_kind`'s twins hang on the model fitted on all the text: it holds them, they point back
        # weakly. No reference cycle, so a model dropped (learning swaps in new weights every few KB)
        # frees its megabytes at once instead of at the garbage collector's next full pass.
        self._twins: dict[str, TextModel] = {}
        self._plain_kinds: set[str] = set()           # kinds served by this model itself (no weights of their own)
        self._base: weakref.ref[TextModel] | None = None   # a twin's model fitted on all the text

    def with_weights(self, weights: Weights) -> "TextModel":
        """The same model (info, backend, n-grams, match mixing, kind) with other weights of the same shapes."""
        return TextModel(self.info, weights, backend=self.backend.name, path=self.path,
                         use_match=self.mixer is not None, ngram=self.ngram, project=self.project).for_kind(self.kind)

    def with_corpus_ngram(self, ngram: NgramModel | None) -> "TextModel":
        """The same network, its backend shared (so that the engine keeps the states it cached and what
        it learned), mixed with the corpus n-gram `ngram` by the weights fitted with it: a table counted
        after the model was loaded (`memory.corpus_ngram`)."""
        if self.kind is not None:
            return self._fitted_on_all().with_corpus_ngram(ngram).for_kind(self.kind)
        return self._remixed(ngram, None)

    def _remixed(self, ngram: NgramModel | None, kind: str | None) -> "TextModel":
        """A copy sharing the backend, mixed with `ngram` by the weights of `kind`: with a kind, a
        twin of this model; without, a new model fitted on all the text, with no twins yet."""
        twin = copy.copy(self)
        twin.ngram, twin.kind = ngram, kind
        twin.mixer = _mixer(self.info, ngram, self.project, kind) if self.mixer is not None else None
        twin._twins, twin._plain_kinds = {}, set()
        twin._base = weakref.ref(self) if kind is not None else None
        return twin

    def _fitted_on_all(self) -> "TextModel":
        """The model this one is a twin of (itself if it is not a twin). Where that model was
        dropped while its twin was kept, a new one, which the twin then points to."""
        if self._base is None:
            return self
        base = self._base()
        if base is None:
            base = self._remixed(self.ngram, None)
            base._twins[self.kind] = self
            self._base = weakref.ref(base)
        return base

    def for_kind(self, name: str | None) -> "TextModel":
        """The same network mixed by the weights fitted on text of a kind (`name`: the kind or a Neovim
        filetype of it, `text_kinds`), where the model has weights for that kind; else the model
        fitted on all its text. Each twin is made once and kept; they share the backend, so the
        engine's cached states and what it learned serve them all."""
        kind = kind_of(name)
        base = self._fitted_on_all()
        if kind is None or kind in base._plain_kinds:
            return base
        twin = base._twins.get(kind)              # asked on every request: found here from the second on
        if twin is None:
            if base.mixer is None or not serves_kind(base.info, base.ngram, kind):
                base._plain_kinds.add(kind)
                return base
            twin = base._twins[kind] = base._remixed(base.ngram, kind)
        return twin

    def with_project(self, root: str | os.PathLike | None, **options) -> "TextModel":
        """The same model drawing on the text files under `root` too (`memory.project`: indexed now,
        in this call); None: without a project. `options`: `build_project_memory`'s (exclude, bounds,
        texts to leave out)."""
        from textgen_core.memory.project import build_project_memory
        base = self.with_project_memory(None)
        if root is None:
            return base
        return self.with_project_memory(build_project_memory(root, base, **options))

    def with_project_memory(self, project: ProjectMemory | None) -> "TextModel":
        """The same model (kind included) with a project memory already built (or none)."""
        return TextModel(self.info, self.weights, backend=self.backend.name, path=self.path,
                         use_match=self.mixer is not None, ngram=self.ngram, project=project).for_kind(self.kind)

    @property
    def name(self) -> str:
        return self.info.name or (self.path.name if self.path else "model")

    @property
    def config(self):
        return self.info.config

    # -- the state after a context -------------------------------------------------------------
    def prime(self, data: bytes, state=None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Logits (256,) after `data` and the state; an empty context starts from a newline."""
        if not data:
            data = b"\n"
        return self.backend.prime(to_ids(data), state)

    # -- Python API ----------------------------------------------------------------------------
    def complete(self, context: str, max_chars: int = 80, stop_at_newline: bool = True,
                 temperature: float = 0.0, seed: int | None = None, n: int = 1, top_k: int = 0,
                 top_p: float = 1.0, beam_width: int = 1, stop_at_word_end: bool = False,
                 max_context_bytes: int = 65536, on_partial: PartialCallback | None = None,
                 should_cancel: Callable[[], bool] | None = None) -> str | list[str]:
        """Continue `context`; deterministic (greedy) unless a temperature or seed is given.

        Returns one string, or a list of up to `n` distinct alternatives when n > 1.
        """
        if seed is not None and temperature == 0:
            temperature = 0.8
        options = DecodeOptions(max_chars=max_chars, stop_at_newline=stop_at_newline, temperature=temperature,
                                seed=seed, n=n, top_k=top_k, top_p=top_p, beam_width=beam_width,
                                stop_at_word_end=stop_at_word_end)
        texts = self.continue_bytes(encode(context)[-max_context_bytes:], options, on_partial, should_cancel)
        return texts if n > 1 else texts[0]

    def continue_bytes(self, data: bytes, options: DecodeOptions, on_partial: PartialCallback | None = None,
                       should_cancel: Callable[[], bool] | None = None, end_offset: int | None = None,
                       window_bytes: int = WINDOW_BYTES, window_step: int = WINDOW_STEP) -> list[str]:
        """Continue the bytes `data`: the GRU reads its window of them, the match model all of them."""
        window = context_window(data, len(data) if end_offset is None else end_offset, window_bytes, window_step)
        logits, state = self.prime(window)
        return decode(self.backend, state, logits, options, on_partial, should_cancel,
                      memory=data or b"\n", mixer=self.mixer)

    def bits_per_char(self, text: str | bytes, learn: bool = False, network_probs: np.ndarray | None = None) -> float:
        """Average bits per byte to encode `text` (the first byte predicted after a newline); with
        `learn`, the GRU learns the text as it reads it (`adaptation.learning_target_probs`).
        `network_probs`: the GRU's `target_probs(b"\\n" + text)` where the caller has them already."""
        data = text if isinstance(text, bytes) else encode(text)
        if not data:
            raise ValueError("bits_per_char needs a non-empty text")
        if learn:
            probs = learning_target_probs(self.config, self.weights, b"\n" + data)
        else:
            probs = self.target_probs(b"\n" + data) if network_probs is None else network_probs
        if self.mixer is not None:
            probs = self.mixer.mix_targets(b"\n" + data, probs)
        return float(-np.log2(np.maximum(probs, 1e-300)).mean())

    def target_probs(self, data: bytes) -> np.ndarray:
        """The GRU's probability of each byte data[1:] given the bytes before it: (N - 1,)."""
        ids = to_ids(data)
        state = None
        chunks = []
        for start in range(0, len(ids) - 1, BPC_CHUNK):
            targets = ids[start + 1:start + 1 + BPC_CHUNK]
            logits, state = self.backend.prime(ids[start:start + len(targets)], state, all_logits=True)  # (T, 256)
            log_probs = log_softmax(logits.astype(np.float64))                                # (T, 256)
            chunks.append(np.exp(log_probs[np.arange(len(targets)), targets]))                 # (T,)
        return np.concatenate(chunks)


def _mixer(info: ModelInfo, ngram: NgramModel | None, project: ProjectMemory | None,
           kind: str | None = None) -> MatchMixer:
    """The model's mixer, with the project's n-gram mixed in after its own where there is one."""
    mixer = mixer_from_info(info, ngram, kind)
    return mixer.with_memories([(project.ngram, project.weights)]) if project is not None else mixer


def fitted_kinds(info: ModelInfo) -> dict[str, dict]:
    """The mixing weights fitted per kind of text (config.json's match.kinds, `textgen fit`): those
    of known kinds that are tables; the file is data, so anything else is ignored."""
    kinds = info.match.get("kinds") if isinstance(info.match, dict) else None
    if not isinstance(kinds, dict):
        return {}
    return {kind: fitted for kind, fitted in kinds.items() if kind_of(kind) == kind and isinstance(fitted, dict)}


def mixer_from_info(info: ModelInfo, ngram: NgramModel | None = None, kind: str | None = None) -> MatchMixer:
    """The model's learned mixing weights (those fitted with its n-gram where it has one; with a
    `kind`, those fitted on that kind of text first), or the defaults for those it has none of (or
    unusable ones)."""
    sources = [fitted_kinds(info).get(kind, {}), info.match] if kind is not None else [info.match]
    return MatchMixer(ngram=ngram, **_learned(sources, ngram))


def serves_kind(info: ModelInfo, ngram: NgramModel | None, kind: str) -> bool:
    """Whether the weights fitted on `kind` supply any usable mixing weight with `ngram` (or without
    one): a kind fitted without the n-gram the model now has, or with unusable values, does not."""
    return bool(_learned([fitted_kinds(info).get(kind, {})], ngram))


def _learned(sources: list[dict], ngram: NgramModel | None) -> dict[str, tuple]:
    """Each mixing weight from the first of `sources` (config tables) that has it usable; the
    weights fitted with the n-gram where there is one."""
    learned = {}
    for key in ("weights", "word_weights", "ngram_weights"):
        for source in sources:
            fitted = source.get("with_ngram") if ngram is not None else source
            try:
                MatchMixer(ngram=ngram, **{key: tuple(fitted[key])})          # validates them alone
            except (AttributeError, KeyError, TypeError, ValueError):
                continue
            learned[key] = tuple(fitted[key])
            break
    return learned


def load_model(name_or_path: str | os.PathLike = "default", backend: str = "numpy",
               use_match: bool = True, corpus_cache: bool = True) -> TextModel:
    """Load a model folder by name (user models, then shipped ones) or path, validated as data. Its
    corpus n-gram is the folder's, else (`corpus_cache`) the one the editor counted into the cache
    for it (`memory.corpus_ngram`: the light install ships the default model without it)."""
    path = resolve_model_path(name_or_path)
    info, weights = load_model_folder(path)
    if not info.name:
        info = replace(info, name=path.name)
    ngram = read_ngram(path)
    if ngram is None and corpus_cache:
        from textgen_core.memory.corpus_ngram import cached_ngram  # it reads model files: here, not above
        ngram = cached_ngram(path, info)
    return TextModel(info, weights, backend=backend, path=path, use_match=use_match, ngram=ngram)
