"""Continuing a context: 1..n distinct suggestions decoded as one batch, the first led by the
buffer's own words or the most useful next word."""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable

import numpy as np

from textgen_core.decode.options import Backend, DecodeOptions, PartialCallback
from textgen_core.decode.search import beam_search, most_useful_next_words
from textgen_core.decode.steps import (
    Decoding,
    _greedy,
    _prefetch_ngram,
    _sample,
    mixed_log_probs,
)
from textgen_core.decode.stops import _max_bytes, _max_period, _one_turn, visible_text
from textgen_core.memory.buffer_words import next_word, word_completions
from textgen_core.memory.match import MatchMixer

Leads = list[tuple[bytes, bool]]


def decode(backend: Backend, state: tuple[np.ndarray, ...], logits: np.ndarray, options: DecodeOptions,
           on_partial: PartialCallback | None = None, should_cancel: Callable[[], bool] | None = None,
           memory: bytes | None = None, mixer: MatchMixer | None = None, leads: Leads | None = None) -> list[str]:
    """Continue from `state` whose next-byte logits are `logits` (256,); returns 1..n distinct texts.

    With `memory` (the context, which may reach further back than the GRU's window) and a `mixer`,
    the match model's predictions and the word votes (`word_votes`) are mixed into every step, and
    the greedy text starts with the buffer's own completion of the word the cursor is in, or at a
    word start with the word that followed the last word there before, if it has one
    (`buffer_words`: where its two latest words for the cursor's word differ, with the part they
    share, alone); else, with a `word_beam`, with the next word that saves the most keystrokes, or
    the part of it that the model is sure of, alone; greedy alternatives (n > 1) with the buffer's
    words, then the next most useful words (`_leads`), and sampled ones after those. Every row stops
    where it goes round in a loop (`loop_period`). `leads`: how the greedy rows start, found ahead
    by `decode_leads` with the same arguments (the engine's guesses), instead of searched here.
    """
    if options.max_chars == 0:
        return [""]
    run = Decoding.of(backend, options, memory, mixer, should_cancel, on_partial)
    if options.beam_width > 1 and options.temperature == 0:
        best = beam_search(run, state, logits)
        if options.n == 1:
            if on_partial:
                on_partial([best])
            return [best]
        others = replace(run, options=replace(options, n=options.n - 1), on_partial=None)
        return _distinct([best] + _sample_rows(others, state, logits, []))
    if leads is None:
        leads = _leads(run, state, logits) if options.temperature == 0 else []
    return _distinct(_sample_rows(run, state, logits, list(leads)))


def decode_leads(backend: Backend, state: tuple[np.ndarray, ...], logits: np.ndarray, options: DecodeOptions,
                 should_cancel: Callable[[], bool] | None = None, memory: bytes | None = None,
                 mixer: MatchMixer | None = None) -> Leads | None:
    """How `decode` with the same arguments starts its greedy rows (the searched or the buffer's next
    words), for a later `decode(..., leads=)`: the part of a suggestion that decides when it shows,
    found ahead. None where decode finds no leads (sampling, beam search, nothing to decode)."""
    if options.max_chars == 0 or options.temperature != 0 or options.beam_width > 1:
        return None
    return _leads(Decoding.of(backend, options, memory, mixer, should_cancel), state, logits)


def _leads(run: Decoding, state, logits: np.ndarray) -> list[tuple[bytes, bool]]:
    """How the greedy rows start, and whether each row ends with its lead: the first with the buffer's
    own word if it has one (the part that its two most recent words for the cursor's word share,
    alone, where they differ: `buffer_words`), else with the most useful next word; alternatives
    (n > 1) with the buffer's words, then the next most useful words, so that cycling offers other
    words rather than samples of the same one. A word whose end the model is unsure of is shown alone
    (`most_useful_next_words`). At least one lead, maybe b""."""
    memory, options = run.memory, run.options
    completions = word_completions(memory) if memory is not None else []
    shared = os.path.commonprefix(completions) if len(completions) > 1 else b""
    leads = ([(shared, True)] if shared else []) + [(rest, False) for rest in completions if rest != shared]
    if not leads and memory is not None and (word := next_word(memory)):
        leads = [(word, False)]
    if options.word_beam > 1 and (not leads or options.n > len(leads)):
        own = [lead for lead, _ in leads]
        searched = most_useful_next_words(run, state, logits, count=options.n)
        leads += [(lead, lead == word) for word, lead in searched
                  if word not in own and not (lead == word and any(o.startswith(word) for o in own))]
    return leads[:options.n] or [(b"", False)]


def _distinct(texts: list[str]) -> list[str]:
    """Distinct suggestions, in order; trailing blanks after a line break are dropped (invisible and
    useless to accept), so a suggestion of nothing but line breaks and spaces becomes empty."""
    seen: list[str] = []
    for text in texts:
        if "\n" in text:
            text = text.rstrip()
        if text not in seen and (text or not seen):
            seen.append(text)
    return seen or [""]


def _sample_rows(run: Decoding, state, logits: np.ndarray, leads: list[tuple[bytes, bool]]) -> list[str]:
    """Decode options.n rows as one batch: one greedy row for each of `leads` (its first bytes, and
    whether it ends there), the others sampled."""
    options, mixer = run.options, run.mixer
    n = options.n
    sampled_rows = n - len(leads)
    rng = np.random.default_rng(options.seed if options.seed is not None else 0) if sampled_rows else None
    temperature = options.temperature if options.temperature > 0 else options.alt_temperature
    rows_state = tuple(np.repeat(h, n, axis=0) for h in state)           # (n, H) each
    row_logits = np.repeat(logits.reshape(1, -1), n, axis=0)             # (n, 256)
    data = [bytearray() for _ in range(n)]
    texts = [""] * n
    done = [False] * n
    for row, (lead, ends) in enumerate(leads):               # a lead's text is known before any step
        texts[row], stopped = visible_text(lead, options)
        done[row] = stopped or (ends and len(lead) > 0)
    if all(done):                                             # every row is its lead: no step to take
        return texts
    if run.on_partial is not None and texts[0]:
        run.on_partial(list(texts))
    memories = [run.row_memory() for _ in range(n)]
    for step in range(_max_bytes(options)):
        run.check_cancelled()
        ids = np.empty(n, np.int32)
        _prefetch_ngram(mixer, [memories[row] for row in range(n)
                                if not done[row] and (row >= len(leads) or step >= len(leads[row][0]))])
        for row in range(n):
            if row < len(leads):
                lead = leads[row][0]
                ids[row] = lead[step] if step < len(lead) else _greedy(row_logits[row], mixer, memories[row])
            else:
                ids[row] = _sample(mixed_log_probs(row_logits[row], mixer, memories[row]), temperature,
                                   options.top_k, options.top_p, rng)
        for row in range(n):
            if done[row]:
                continue
            data[row].append(int(ids[row]))
            if memories[row] is not None:
                memories[row].append(int(ids[row]))
            if row < len(leads) and step + 1 < len(leads[row][0]):
                continue                                          # its text is the lead's until then
            texts[row], done[row] = visible_text(bytes(data[row]), options)
            if row < len(leads) and leads[row][1] and step + 1 >= len(leads[row][0]):
                done[row] = True                                  # a lead that ends its row
            kept = None if done[row] else _one_turn(data[row], _max_period(options))
            if kept is not None:                                  # a loop: one turn of it, and stop
                texts[row], done[row] = visible_text(kept, options)[0], True
        if all(done):
            break
        if run.on_partial is not None and (step + 1) % options.stream_every == 0:
            run.on_partial(list(texts))
        row_logits, rows_state = run.backend.step(ids, rows_state)
    return texts
