"""The greedy suggestion starts with the next word that saves the most keystrokes in expectation, not
with the likeliest first byte."""
import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from textgen_core.decode import (
    DecodeOptions,
    Decoding,
    decode,
    keys_saved,
    loop_period,
    most_useful_next_words,
    visible_text,
)
from textgen_core.decode.search import _grown_text
from textgen_core.memory import word_votes
from textgen_core.memory.match import MatchMixer


class ScriptedBackend:
    """A 'model' whose next-byte probabilities depend only on the last byte fed: a table of
    {byte: {next byte: probability}}; the state is the last byte."""

    name = "scripted"

    def __init__(self, table):
        self.table = table

    def logits_after(self, byte: int) -> np.ndarray:
        probs = np.full(256, 1e-6)
        for following, p in self.table.get(byte, {}).items():
            probs[following] = p
        return np.log(probs / probs.sum()).astype(np.float32)

    def zero_state(self, batch: int = 1):
        return (np.zeros((batch, 1), np.float32),)

    def step(self, ids, state):
        return np.stack([self.logits_after(int(i)) for i in ids]), (np.array(ids, np.float32).reshape(-1, 1),)


# After the context: "a" is the likeliest byte (0.4) but spreads over many words ("ax", "ay", ...);
# "b" (0.35) is almost always "be". The likeliest word is " be", the greedy path starts " a".
SPACE, A, B, E, DOT = (ord(c) for c in " abe.")
TABLE = {SPACE: {A: 0.4, B: 0.35, DOT: 0.25},
         A: {ord(c): 0.1 for c in "cdfghijklm"},
         B: {E: 0.95, DOT: 0.05},
         E: {DOT: 1.0},
         **{ord(c): {DOT: 1.0} for c in "cdfghijklm"},
         DOT: {SPACE: 1.0}}


WORD_BEAM = DecodeOptions(word_beam=4)


def _start(backend):
    return backend.logits_after(SPACE), backend.zero_state(1)


def best_word(backend, state, logits, options=WORD_BEAM, memory=None, mixer=None) -> bytes:
    found = most_useful_next_words(Decoding.of(backend, options, memory, mixer), state, logits)
    return found[0][0] if found else b""


def test_the_likeliest_word_wins_over_the_likeliest_byte():
    backend = ScriptedBackend(TABLE)
    logits, state = _start(backend)
    greedy = decode(backend, state, logits, DecodeOptions(max_chars=3, word_beam=1))[0]
    assert greedy.startswith("a")
    assert best_word(backend, state, logits) == b"be"
    searched = decode(backend, state, logits, DecodeOptions(max_chars=3, word_beam=4))[0]
    assert searched == "be."


def test_a_word_ended_by_the_stop_rule_counts_as_finished():
    backend = ScriptedBackend({SPACE: {B: 1.0}, B: {E: 1.0}, E: {ord("\n"): 1.0}})
    logits, state = _start(backend)
    assert best_word(backend, state, logits) == b"be"
    assert decode(backend, state, logits, DecodeOptions(word_beam=4))[0] == "be"


def test_a_long_word_beats_a_slightly_likelier_short_one():
    # " ab" (0.5) saves 1 key, " cdefgh" (0.4) saves 5: worth 0.5 against 2.0.
    chain = {ord(x): {ord(y): 1.0} for x, y in zip("cdefg", "defgh")}
    backend = ScriptedBackend({SPACE: {A: 0.5, ord("c"): 0.4, DOT: 0.1}, A: {B: 1.0}, B: {DOT: 1.0},
                               **chain, ord("h"): {DOT: 1.0}, DOT: {SPACE: 1.0}})
    logits, state = _start(backend)
    assert best_word(backend, state, logits) == b"cdefgh"


def test_a_word_that_saves_nothing_is_not_searched_for():
    backend = ScriptedBackend({SPACE: {A: 1.0}, A: {DOT: 1.0}, DOT: {SPACE: 1.0}})
    logits, state = _start(backend)
    assert best_word(backend, state, logits) == b""
    assert decode(backend, state, logits, DecodeOptions(max_chars=3, word_beam=4))[0] == "a. "


def test_keys_saved_counts_one_key_per_accepted_word():
    assert keys_saved("") == 0
    assert keys_saved(" local") == 5
    assert keys_saved("\n    return") == 4 + 5          # the line break and indentation are a word of their own
    assert keys_saved("vim.api") == 2 + 3               # "vim", ".api"


def test_alternatives_start_with_the_next_most_useful_words():
    # worth: " cdefgh" 0.3 × 5 = 1.5, " ab" 0.5 × 1 = 0.5, " ij" 0.2 × 1 = 0.2
    chain = {ord(x): {ord(y): 1.0} for x, y in zip("cdefg", "defgh")}
    backend = ScriptedBackend({SPACE: {A: 0.5, ord("c"): 0.3, ord("i"): 0.2}, A: {B: 1.0}, B: {DOT: 1.0},
                               **chain, ord("i"): {ord("j"): 1.0}, ord("h"): {DOT: 1.0}, ord("j"): {DOT: 1.0},
                               DOT: {SPACE: 1.0}})
    logits, state = _start(backend)
    alternatives = decode(backend, state, logits, DecodeOptions(max_chars=8, word_beam=4, n=3))
    assert alternatives == ["cdefgh. ", "ab. ab. ", "ij. ab. "]
    assert decode(backend, state, logits, DecodeOptions(max_chars=8, word_beam=4))[0] == alternatives[0]


def test_the_lead_ends_the_word_so_the_greedy_path_cannot_run_on():
    # After " abc" the likeliest byte is "d" (0.3), but the word ends there with 0.7 in all:
    # " abc" is worth 0.7 × 2, " abcd" 0.3 × 3.
    C, D, PAREN = ord("c"), ord("d"), ord("(")
    backend = ScriptedBackend({SPACE: {A: 1.0}, A: {B: 1.0}, B: {C: 1.0},
                               C: {SPACE: 0.28, PAREN: 0.21, DOT: 0.21, D: 0.3}, D: {DOT: 1.0},
                               PAREN: {DOT: 1.0}, DOT: {SPACE: 1.0}})
    logits, state = _start(backend)
    assert most_useful_next_words(Decoding.of(backend, WORD_BEAM), state, logits) == [(b"abc", b"abc ")]
    assert decode(backend, state, logits, DecodeOptions(max_chars=4, word_beam=4))[0] == "abc "


def test_alternatives_follow_the_buffers_own_word():
    # "pa" completes to "parts" from the buffer; the search finds "pabe" (0.5 × 1) and "parts" itself.
    R, T, S, C = (ord(c) for c in "rtsc")
    backend = ScriptedBackend({A: {R: 0.2, B: 0.5, C: 0.3}, R: {T: 1.0}, T: {S: 1.0}, S: {DOT: 1.0},
                               B: {E: 1.0}, E: {DOT: 1.0}, C: {DOT: 1.0}, DOT: {SPACE: 1.0}, SPACE: {A: 1.0}})
    logits, state = backend.logits_after(A), backend.zero_state(1)
    context = b"the parts. pa"
    mixer = MatchMixer(word_weights=(0.0,) * len(word_votes.VOTE_WEIGHTS))   # votes would sample "rts" too
    one = decode(backend, state, logits, DecodeOptions(max_chars=5, word_beam=4), memory=context, mixer=mixer)
    three = decode(backend, state, logits, DecodeOptions(max_chars=5, word_beam=4, n=3), memory=context,
                   mixer=mixer)
    assert one[0].startswith("rts") and three[0] == one[0]
    assert three[1].startswith("be.")
    assert len(three) == 3 and not three[2].startswith(("rts", "be."))      # nothing else worth a key: sampled


def test_the_first_word_does_not_depend_on_how_many_are_asked_for():
    # " ab" goes on with a space (0.6), an em dash (3 bytes: not an ending the search counts, 0.04) or
    # another "b" (0.36); " gh" is worth 0.31. " ab" is worth 0.5 × 1 key whichever byte ends it, all of
    # it in the step that finds the space: a search for three words, which looks further, finds the
    # same first word as a search for one, and cycling shows another suggestion.
    G, H, DASH = ord("g"), ord("h"), 0xE2
    backend = ScriptedBackend({SPACE: {A: 0.5, G: 0.31, DOT: 0.19}, A: {B: 1.0}, B: {SPACE: 0.6, DASH: 0.04, B: 0.36},
                               G: {H: 1.0}, H: {SPACE: 1.0}, DOT: {SPACE: 1.0},
                               DASH: {0x80: 1.0}, 0x80: {0x94: 1.0}, 0x94: {SPACE: 1.0}})
    logits, state = _start(backend)
    options = DecodeOptions(max_chars=12, word_beam=4)
    one = most_useful_next_words(Decoding.of(backend, options), state, logits, count=1)
    three = most_useful_next_words(Decoding.of(backend, options), state, logits, count=3)
    assert one == three[:1] == [(b"ab", b"ab ")]
    alternatives = decode(backend, state, logits, DecodeOptions(max_chars=12, word_beam=4, n=3))
    assert decode(backend, state, logits, options)[0] == alternatives[0] != alternatives[1]


def test_a_word_is_worth_its_bytes_whatever_comes_after_them():
    # " er" ends there 0.3 of the time and goes on to "ers" or "ern" 0.35 each: accepting "er" helps in
    # all three cases (1 key saved), "ers" in one (2 keys). Counting only where "er" ends, "ers" won.
    R, S, N = ord("r"), ord("s"), ord("n")
    backend = ScriptedBackend({SPACE: {E: 1.0}, E: {R: 1.0}, R: {SPACE: 0.3, S: 0.35, N: 0.35},
                               S: {SPACE: 1.0}, N: {SPACE: 1.0}})
    logits, state = _start(backend)
    assert best_word(backend, state, logits) == b"er"
    assert decode(backend, state, logits, DecodeOptions(max_chars=3, word_beam=4))[0] == "er "


def test_the_sure_part_of_a_word_is_shown_alone_where_its_end_is_unsure():
    # "xyzw" is sure, then "a" or "o" (0.5 each) and a full stop: "xyzw" saves 3 keys for sure, either
    # whole word 4 keys half of the time. The model never ends "xyzw" itself, so no byte may follow it.
    X, Y, Z, W, O = (ord(c) for c in "xyzwo")
    backend = ScriptedBackend({SPACE: {X: 1.0}, X: {Y: 1.0}, Y: {Z: 1.0}, Z: {W: 1.0}, W: {A: 0.5, O: 0.5},
                               A: {DOT: 1.0}, O: {DOT: 1.0}, DOT: {SPACE: 1.0}})
    logits, state = _start(backend)
    assert most_useful_next_words(Decoding.of(backend, WORD_BEAM), state, logits) == [(b"xyzw", b"xyzw")]
    assert decode(backend, state, logits, DecodeOptions(max_chars=20, word_beam=4))[0] == "xyzw"
    cycled = decode(backend, state, logits, DecodeOptions(max_chars=20, word_beam=4, n=3))
    assert cycled[0] == "xyzw" and cycled[1] in ("xyzwa. ", "xyzwo. ")  # then a whole word (one turn of its loop)


def test_a_words_chance_to_end_adds_up_over_the_bytes_that_end_it():
    # After " re": "t" or "m" (0.47 each), a space or a full stop (0.035, 0.025): 0.06 in all, enough to
    # show "re" with an ending and go on; " re" is worth 1 key for sure, "ret" and "rem" 2 × 0.47.
    R, T, M = ord("r"), ord("t"), ord("m")
    backend = ScriptedBackend({SPACE: {R: 1.0}, R: {E: 1.0}, E: {T: 0.47, M: 0.47, SPACE: 0.035, DOT: 0.025},
                               T: {DOT: 1.0}, M: {DOT: 1.0}, DOT: {SPACE: 1.0}})
    logits, state = _start(backend)
    assert most_useful_next_words(Decoding.of(backend, WORD_BEAM), state, logits) == [(b"re", b"re ")]


def test_alternatives_skip_the_sure_part_of_the_buffers_own_word():
    # "pa" completes to "rent" from the buffer; the search's best is the sure part "re" of "ret", "rem"
    # and "ren" (1 key for sure against 2 × 0.34), which the buffer's word already offers.
    R, T, M, N = (ord(c) for c in "rtmn")
    backend = ScriptedBackend({A: {R: 1.0}, R: {E: 1.0}, E: {T: 0.34, M: 0.33, N: 0.33}, T: {DOT: 1.0},
                               M: {DOT: 1.0}, N: {DOT: 1.0}, DOT: {SPACE: 1.0}, SPACE: {A: 1.0}})
    logits, state = backend.logits_after(A), backend.zero_state(1)
    assert best_word(backend, state, logits) == b"re"
    mixer = MatchMixer(word_weights=(0.0,) * len(word_votes.VOTE_WEIGHTS))
    two = decode(backend, state, logits, DecodeOptions(max_chars=5, word_beam=4, n=2), memory=b"the parent. pa",
                 mixer=mixer)
    assert two[0].startswith("rent") and two[1] == "ret. "


def _scripted_text(text: bytes):
    """A backend that writes `text` (every byte at most once before, so the last byte says the next),
    going round it again at its end, and its start state."""
    backend = ScriptedBackend({byte: {text[(i + 1) % len(text)]: 1.0} for i, byte in enumerate(text)})
    return backend, backend.logits_after(text[-1]), backend.zero_state(1)


def test_a_suggestion_stops_after_one_turn_of_a_loop():
    backend, logits, state = _scripted_text(b"quickbrownfx;")
    assert decode(backend, state, logits, DecodeOptions(max_chars=80, word_beam=1))[0] == "quickbrownfx;"
    backend, logits, state = _scripted_text(b"ab, ")                  # a short loop: one turn too
    assert decode(backend, state, logits, DecodeOptions(max_chars=80, word_beam=1))[0] == "ab, "


def test_a_beam_search_stops_after_one_turn_of_a_loop_too():
    backend, logits, state = _scripted_text(b"quickbrownfx;")
    beam = DecodeOptions(max_chars=80, beam_width=4)
    assert decode(backend, state, logits, beam)[0] == "quickbrownfx;"
    assert decode(backend, state, logits, beam, memory=b"quickbrownfx;", mixer=MatchMixer())[0] == "quickbrownfx;"


def test_text_that_repeats_a_name_or_a_rule_is_no_loop():
    assert loop_period(b"total = compute_sum(a) + compute_sum(") == 0      # the name again, text between
    assert loop_period(b"x" * 40) == 0 and loop_period(b"-=" * 20) == 0        # a rule goes on
    assert loop_period(b"say: and the cursor seeds and the cursor seeds ") == len(b"and the cursor seeds ")
    dashes = ScriptedBackend({ord("-"): {ord("-"): 1.0}})
    assert decode(dashes, dashes.zero_state(1), dashes.logits_after(ord("-")),
                  DecodeOptions(max_chars=60, word_beam=1))[0] == "-" * 60


@given(beam=st.binary(max_size=15).map(lambda data: data.replace(b"\r", b"")) | st.text(
           alphabet=" \t\n\u00e9\u65e5ab_(.", max_size=8).map(str.encode),
       byte=st.integers(0, 255), stop_at_newline=st.booleans(), stop_at_word_end=st.booleans(),
       max_chars=st.integers(1, 20))
@example(beam=b"ab", byte=ord("c"), stop_at_newline=True, stop_at_word_end=False, max_chars=3)   # the length
@settings(max_examples=500)
def test_the_search_grows_a_beam_s_text_as_visible_text_would(beam, byte, stop_at_newline, stop_at_word_end,
                                                               max_chars):
    """The word search's shortcut for a beam's text plus one byte (`_grown_text`) is `visible_text`."""
    options = DecodeOptions(max_chars=max_chars, stop_at_newline=stop_at_newline, stop_at_word_end=stop_at_word_end)
    text, stopped = visible_text(beam, options)
    shows_all = not stopped and len(text.encode()) == len(beam)
    grown = beam + bytes((byte,))
    assert _grown_text(text if shows_all else None, byte, grown, options) == visible_text(grown, options)
