"""Searches over bytes: a small beam search, and the next words that save the most keystrokes."""
from __future__ import annotations

import heapq
import math
import re

import numpy as np

from textgen_core.decode.options import DecodeOptions
from textgen_core.decode.steps import (
    Decoding,
    RowMemory,
    _mixed,
    _prefetch_ngram,
    mixed_log_probs,
)
from textgen_core.decode.stops import _max_bytes, _max_period, _one_turn, visible_text
from textgen_core.memory.buffer_words import is_word_byte
from textgen_core.model.probabilities import log_softmax


def beam_search(run: Decoding, state, logits: np.ndarray, length_penalty: float = 0.7) -> str:
    """A small beam search over bytes; finished beams are ranked by log-probability / length^penalty.
    A beam that goes round a loop finishes with one turn of it, as a greedy row does."""
    options, mixer = run.options, run.mixer
    width = options.beam_width
    beams: list[tuple[float, bytes, RowMemory | None]] = [(0.0, b"", run.row_memory())]
    beam_state = state                                                   # (1, H) each

    def normalised(score: float, data: bytes) -> float:
        return score / max(len(data), 1) ** length_penalty

    def scores(step_logits: np.ndarray) -> np.ndarray:                   # (k, 256) → (k, 256) log-probs
        _prefetch_ngram(mixer, [beam[2] for beam in beams])
        return np.stack([mixed_log_probs(row, mixer, beams[b][2]) for b, row in enumerate(step_logits)])

    beam_logp = scores(logits.reshape(1, -1))                            # (1, 256)
    finished: list[tuple[float, str]] = []
    for _ in range(_max_bytes(options)):
        run.check_cancelled()
        candidates = []
        for b in range(len(beams)):
            for byte in np.argpartition(-beam_logp[b], width)[:width]:
                candidates.append((beams[b][0] + float(beam_logp[b, byte]), b, int(byte)))
        candidates.sort(key=lambda c: -c[0])
        next_beams, parents, ids = [], [], []
        for score, b, byte in candidates:
            data = beams[b][1] + bytes((byte,))
            text, stopped = visible_text(data, options)
            kept = None if stopped else _one_turn(data, _max_period(options))
            if stopped or kept is not None:                       # a loop is ranked by the turn it keeps
                finished.append((normalised(score, data if kept is None else kept),
                                 text if kept is None else visible_text(kept, options)[0]))
                continue
            parent_memory = beams[b][2]
            next_beams.append((score, data, parent_memory.extended(byte) if parent_memory is not None else None))
            parents.append(b)
            ids.append(byte)
            if len(next_beams) == width:
                break
        if not next_beams or (len(finished) >= width and
                              max(f[0] for f in finished) > normalised(next_beams[0][0], next_beams[0][1])):
            break
        beams = next_beams
        gathered = tuple(h[parents] for h in beam_state)                  # (k, H) each
        step_logits, beam_state = run.backend.step(np.array(ids, np.int32), gathered)
        beam_logp = scores(step_logits)                                  # (k, 256)
    for score, data, _ in beams:
        finished.append((normalised(score, data), visible_text(data, options)[0]))
    return max(finished, key=lambda f: f[0])[1]


# The next word with the blanks and punctuation before it (what `accept word` takes, but for a line
# break's indentation, which it takes alone: the search looks for the best indentation and word
# together).
_NEXT_WORD = re.compile(r"\s*[^\w\s]*\w+|\s*[^\w\s]+|\s+")
# How `accept word` splits a suggestion (lua/textgen/suggestion.lua first_word): a line break and the
# next line's indentation, or a run of blanks, alone; else blanks, then punctuation, then a word.
ACCEPT_WORD = re.compile(r"\s*\n[ \t]*|[ \t]{2,}|\s*[^\w\s]*\w+|\s*[^\w\s]+|\s+")
# The search's longest word: 16 saves the same keystrokes as 32 on every held-out kind and 12 loses 0.7
# points on Python (`bench/quality.py`); the bound is what a search costs where the model is sure of a
# word that does not end (16 batched steps before the first text).
MAX_WORD_BYTES = 16
# A word must be expected to save this many keystrokes to lead a suggestion: below it, the search
# would end on improbable junk where no word is likely, and the greedy byte path does better.
MIN_EXPECTED_SAVING = 0.05
# Below this probability of ending where the search found it end, a word is shown alone, without the
# unlikely ending byte and the text after it: on held-out Lua the same keystrokes are saved as with
# them (42.2 %), and no suggestion shows a word cut short and run on (`ersabl (`, `hierarch `); 0.02
# and 0.15 save the same as 0.05 (42.4 %, with the buffer words' shared part).
MIN_ENDING = 0.05


def accept_words(text: str) -> list[str]:
    """`text` in the pieces that one press of `accept word` takes each."""
    return ACCEPT_WORD.findall(text)


def keys_saved(text: str) -> int:
    """Keystrokes a person saves by accepting `text` word by word (one key a word) instead of typing it."""
    return sum(len(word) - 1 for word in accept_words(text))


def _finished_word(text: str, stopped: bool) -> str | None:
    """The first word of `text` when it is complete: a character after it that cannot extend it, or
    the end of a suggestion that a stop rule ended."""
    match = _NEXT_WORD.match(text)
    if match is None:
        return None
    if match.end() < len(text) or (stopped and match.end() > 0):
        return text[:match.end()]
    return None


def _grown_text(text: str | None, byte: int, data: bytes, options: DecodeOptions) -> tuple[str, bool]:
    """`visible_text(data, options)` for `data` = a beam's bytes + `byte`, without decoding them all
    again where the answer is plain: the beam's `text` shows every byte and `byte` is a tab or a
    printable ASCII character that no stop rule looks at (no line break, no end of the length; a
    run of blanks long enough to end a text does not fit in a word's search)."""
    if (text is not None and (byte == 9 or 32 <= byte < 127) and len(text) + 1 < options.max_chars
            and not options.stop_at_word_end):
        return text + chr(byte), False
    return visible_text(data, options)


def most_useful_next_words(run: Decoding, state, logits: np.ndarray, count: int = 1) -> list[tuple[bytes, bytes]]:
    """Up to `count` next words (with the blanks and punctuation before them), the most keystrokes
    saved in expectation first, found by a beam search over bytes of width `options.word_beam`; each
    as (word, lead): the lead is what a suggestion starts with. It is the word and its likeliest
    ending byte (the word alone, continued greedily, could run on into a longer word) where the model
    gives the word's end at least `MIN_ENDING`; else it is the word alone, and the suggestion stops
    there: the part of a word the model is sure of (`Traversabl`, when it does not know how the
    word ends), as a shell completes the common part of the names it could mean.

    A person accepts a suggestion word by word, so its first word decides whether it helps, and what it
    saves is the word's length less the keys that accept it. `accept word` takes the word as far as
    it goes, and the person types on: a shown `er` helps where the text goes on `ers`. So a word is
    worth
        P(the text goes on with its bytes) × keys_saved(word),
    whichever byte ends it: the search counts a word where one of its best next bytes cannot go on
    with it, so all of a word's worth comes in one step and the first word found does not depend on
    `count`. A long name the model is fairly sure of beats a short word it is a little surer of, and
    where the model does not know how a word goes on, the part of it that it is sure of beats every
    whole word (it saved more held-out keystrokes than the likeliest word: bench/RESULTS.md, word search).
    The search stops when no open path, at its probability, could beat the `count`-th best word found.
    """
    options, mixer = run.options, run.mixer
    width = options.word_beam
    # (log-probability, bytes, memory, its text where every byte shows and nothing stopped it, else None)
    beams: list[tuple[float, bytes, RowMemory | None, str | None]] = [(0.0, b"", run.row_memory(), "")]
    beam_logits, beam_state = logits.reshape(1, -1), state
    values: dict[bytes, float] = {}                   # word → its expected keystrokes saved
    leads: dict[bytes, tuple[float, bytes]] = {}      # word → its likeliest ending: (log-probability, lead)
    ended: dict[bytes, float] = {}                    # word → P(one of the endings found | the word)
    for _ in range(MAX_WORD_BYTES):
        run.check_cancelled()
        candidates = []
        beam_log_probs = log_softmax(beam_logits.astype(np.float64))                      # (B, 256)
        _prefetch_ngram(mixer, [beam[2] for beam in beams])
        for b, (score, _data, row_memory, _text) in enumerate(beams):
            logp = _mixed(beam_log_probs[b], mixer, row_memory)                             # (256,)
            for byte in np.argpartition(-logp, width)[:width]:
                candidates.append((score + float(logp[byte]), b, int(byte)))
        candidates.sort(key=lambda c: -c[0])
        open_paths = []
        for score, b, byte in candidates:
            data = beams[b][1] + bytes((byte,))
            text, stopped = _grown_text(beams[b][3], byte, data, options)
            # a word byte after a text whose first word is open leaves it open
            word = None if not stopped and is_word_byte(byte) else _finished_word(text, stopped)
            if word is None:
                if not stopped:
                    open_paths.append((score, b, byte, data, text))
                continue
            encoded = word.encode()
            if len(data) > len(encoded) + 1:
                continue
            word_score = beams[b][0] if len(data) > len(encoded) else score     # without the ending
            values[encoded] = math.exp(word_score) * keys_saved(word)
            ended[encoded] = ended.get(encoded, 0.0) + math.exp(score - word_score)
            if encoded not in leads or score > leads[encoded][0]:
                leads[encoded] = (score, data)
        best = heapq.nlargest(count, values.values())
        bound = max(MIN_EXPECTED_SAVING, best[-1]) if len(best) == count else MIN_EXPECTED_SAVING
        next_beams, parents, ids = [], [], []
        for score, b, byte, data, text in open_paths:
            if len(next_beams) == width or math.exp(score) * (MAX_WORD_BYTES - 1) <= bound:
                break
            next_beams.append((score, data, beams[b][2].extended(byte) if beams[b][2] is not None else None,
                               text if len(text.encode()) == len(data) else None))
            parents.append(b)
            ids.append(byte)
        if not next_beams:
            break
        beams = next_beams
        beam_logits, beam_state = run.backend.step(np.array(ids, np.int32), tuple(h[parents] for h in beam_state))
    found: list[tuple[bytes, bytes]] = []
    for word in sorted(values, key=values.get, reverse=True):
        if len(found) == count or values[word] < MIN_EXPECTED_SAVING:
            break
        if ended[word] >= MIN_ENDING:
            found.append((word, leads[word][1]))
        elif not any(other.startswith(word) for other, _ in found):     # no part of a word already offered
            found.append((word, leads[word][1][:len(word)]))
    return found
