"""The buffer as memory: the match model recalls names from far back, and never loops on its output."""
import numpy as np

from tests.conftest import TINY_TEXT
from textgen_core import load_model
from textgen_core.decode import RowMemory
from textgen_core.memory.match import MatchMixer, advance, find_match, fit_weights

NAME_FIRST_SEEN = "we call frobnicate_widgets(queue) here.\n"


def test_find_match_points_after_the_latest_earlier_occurrence():
    data = b"abcdefgh XYZ abcdefgh"
    state = find_match(data, len(data))
    assert state.pointer == 8 and data[state.pointer:state.pointer + 1] == b" "
    assert state.length >= 8
    assert find_match(b"no repeats here", 15).pointer == -1


def test_advance_follows_a_correct_prediction_and_stops_at_the_limit():
    data = bytearray(b"hello world; hello world")
    state = find_match(data, 19)                       # "hello " seen before
    assert data[state.pointer] == ord("w")
    state = advance(data, state, 20, limit=20)
    assert data[state.pointer] == ord("o")


def test_a_name_from_beyond_the_gru_window_is_recalled(tiny_model_dir):
    with_match = load_model(tiny_model_dir)
    with_match.mixer = MatchMixer()          # the tiny model's own fitted weights trust its GRU (0.1 bpc)
    without = load_model(tiny_model_dir, use_match=False)
    context = NAME_FIRST_SEEN + TINY_TEXT[:3000] + "we call frobnicat"
    assert with_match.complete(context, max_chars=20).startswith("e_widgets(queue)")
    assert not without.complete(context, max_chars=20).startswith("e_widgets(queue)")


def test_decoding_never_copies_its_own_output():
    memory = RowMemory(b"say abcdefgh")                    # the context
    for byte in b" abcdefgh abcdefgh":                     # generated: copying it back would loop
        memory.append(byte)
        assert memory.state.pointer < memory.limit


def test_match_lowers_bits_per_char_on_repetitive_text(tiny_model_dir):
    text = (NAME_FIRST_SEEN + "zebra quagga okapi. ") * 20
    model = load_model(tiny_model_dir)
    assert len(model.info.match["weights"]) == 6          # fitted on held-out text when trained
    model.mixer = MatchMixer()
    assert model.bits_per_char(text) < 0.7 * load_model(tiny_model_dir, use_match=False).bits_per_char(text)


def test_fitted_weights_trust_long_matches_when_they_are_right():
    data = b"".join(b"row %d: the same words again and again\n" % (i % 7) for i in range(200))
    probs = np.full(len(data) - 1, 0.05)
    weights = fit_weights(data, probs)
    assert weights[-1] > 0.9
    assert MatchMixer(weights).weights == weights
