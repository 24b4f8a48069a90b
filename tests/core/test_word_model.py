"""The buffer's words as a next-byte model: earlier words that start like the one being typed vote for
how it goes on, in bits per character and in decoding alike."""
import numpy as np
import pytest

from textgen_core import load_model
from textgen_core.decode import DecodeOptions, RowMemory, decode, mixed_log_probs
from textgen_core.memory import word_votes
from textgen_core.memory.match import MatchMixer, MatchState, match_predictions
from textgen_core.memory.word_votes import WordVotes, prefix_start, target_votes, voted_bytes, word_starts
from textgen_core.model.text_model import mixer_from_info

WEIGHTS = len(word_votes.VOTE_WEIGHTS)
NO_VOTES = (0.0,) * WEIGHTS


def test_a_prefix_counts_only_where_a_word_starts_and_something_follows():
    data = b"ref_position = 1; xref_pos = 2; ref_range = 3; ref_"
    starts = word_starts(data, b"ref_", len(data))
    assert [data[s:s + 8] for s in starts] == [b"ref_posi", b"ref_rang"]    # not xref_, not the cursor's own
    assert word_starts(data, b"ref_", 30) == [0]                            # only what lies before the limit


def test_votes_trust_the_most_recent_word_most():
    data = b"get_lines get_parser get_lines get_"
    votes = voted_bytes(data, word_starts(data, b"get_", len(data)), 4)
    decay = word_votes.DECAY
    assert votes[ord("l")] == pytest.approx((1 + decay ** 2) / (1 + decay + decay ** 2))
    assert votes[ord("p")] == pytest.approx(decay / (1 + decay + decay ** 2))
    assert voted_bytes(data, [], 4) is None


def test_a_word_prefix_starts_after_a_non_word_byte_and_never_inside_utf8():
    assert prefix_start(b"local ts_pa", 11) == 6
    assert prefix_start(b"local ", 6) == -1
    assert prefix_start("café_no".encode(), len("café_no".encode())) == -1
    assert prefix_start(b" " + b"x" * 80, 81) == -1                       # too long to be a word


def test_narrowed_votes_are_those_searched_afresh():
    context = (b"local function traverse(lang_tree, level)\n  local ts_parser = vim.treesitter.get_parser(0)\n"
               b"  local ts_cs, res_level = nil, 0\n  for i = 1, #tree do local t = tree[i] end\n") * 3
    votes = WordVotes(context)
    for prefix in (b"t", b"tr", b"tre", b"tree", b"ts", b"ts_", b"ts_p", b"l", b"le", b"zz"):
        fresh = voted_bytes(context, word_starts(context, prefix, len(context)), len(prefix))
        narrowed = votes.for_prefix(prefix)
        assert (fresh is None) == (narrowed is None)
        if fresh is not None:
            assert fresh.keys() == narrowed.keys()
            assert all(fresh[byte] == pytest.approx(narrowed[byte]) for byte in fresh)


def test_bits_per_char_and_decoding_see_the_same_votes():
    data = b"\nframe_count = 0\nframe_rate = 30\nprint(frame_c"
    predicted, _ = match_predictions(data)
    probs, buckets = target_votes(data, predicted >= 0)
    end = len(data) - 1                                    # predicting the last byte, "c", after "frame_"
    voted = WordVotes(data[:end]).for_prefix(b"frame_")
    assert probs[end - 1] == pytest.approx(voted[ord("c")])
    assert buckets[end - 1] == word_votes.vote_bucket(len(b"frame_"), matched=True)   # "\nframe_" came before
    assert buckets[0] == -1                                # no word before the first byte
    buckets_per_kind = len(word_votes.PREFIX_EDGES)
    assert word_votes.vote_bucket(6, matched=True) == word_votes.vote_bucket(6, matched=False) + buckets_per_kind


def test_votes_complete_a_name_the_gru_has_never_seen(tiny_model):
    """One letter typed: too short for the buffer's own completion and for the match model."""
    context = b"qwzx_frobnicator = make()\nvalue = 1\nprint(q"
    state_logits, state = tiny_model.prime(context[-320:])
    trusting = MatchMixer(word_weights=(0.9,) * WEIGHTS)
    options = DecodeOptions(max_chars=20)
    with_votes = decode(tiny_model.backend, state, state_logits, options, memory=context, mixer=trusting)[0]
    without = decode(tiny_model.backend, state, state_logits, options, memory=context,
                     mixer=MatchMixer(word_weights=NO_VOTES))[0]
    assert with_votes.startswith("wzx_frobnicator")
    assert not without.startswith("wzx_frobnicator")


def test_mixed_log_probs_put_the_votes_in_and_stay_a_distribution():
    logits = np.zeros(256)
    memory = RowMemory(b"alpha beta alpine a")
    memory.append(ord("l"))
    mixed = np.exp(mixed_log_probs(logits, MatchMixer(word_weights=(0.5,) * WEIGHTS), memory))
    assert mixed.sum() == pytest.approx(1.0)
    assert mixed[ord("p")] > 0.5 > mixed[ord("x")] * 100


def test_the_greedy_argmax_of_the_mixture_is_the_argmax_of_its_log_probabilities():
    """`MatchMixer.mixed_argmax` looks only at the GRU's best and the bytes that the match and the votes
    add to; it must pick what the whole mixed distribution's argmax picks."""
    rng = np.random.default_rng(7)
    data = bytes(rng.integers(32, 127, 400, dtype=np.uint8))
    checked_changed = 0
    for trial in range(400):
        logits = (rng.normal(size=256) * rng.choice([0.5, 3.0])).astype(np.float32)
        state = MatchState(pointer=int(rng.integers(0, len(data))), length=int(rng.integers(6, 40))) \
            if trial % 4 else MatchState()
        voted = {int(b): float(w) for b, w in zip(rng.choice(256, 3, replace=False), rng.dirichlet(np.ones(3)))} \
            if trial % 3 else None
        mixer = MatchMixer(word_weights=tuple(rng.uniform(0, 0.9, WEIGHTS)))
        prefix_length = int(rng.integers(1, 12))
        log_probs = logits.astype(np.float64) - np.log(np.exp(logits.astype(np.float64)).sum())
        expected = int(mixer.mix_log_probs(log_probs, data, state, voted, prefix_length).argmax())
        assert mixer.mixed_argmax(logits, data, state, voted, prefix_length) == expected
        checked_changed += expected != int(logits.argmax())
    assert checked_changed > 20                          # the memory did overrule the GRU in some


def test_votes_lower_bits_per_char_on_text_that_reuses_its_names(tiny_model_dir):
    names = ["renderer_cache", "request_id", "resolve_path", "row_count", "reader_state"]
    text = "".join(f"{names[i % 5]} = f({names[(i * 3) % 5]}, {i})\n" for i in range(60))
    with_votes, match_only = load_model(tiny_model_dir), load_model(tiny_model_dir)
    with_votes.mixer = MatchMixer(with_votes.mixer.weights)                      # the default word weights
    match_only.mixer = MatchMixer(match_only.mixer.weights, NO_VOTES)
    assert with_votes.bits_per_char(text) < match_only.bits_per_char(text) - 0.05


def test_fitted_word_weights_follow_how_often_votes_are_right():
    buckets = np.repeat(np.arange(WEIGHTS), 100)
    gru = np.full(buckets.size, 0.1)
    right = word_votes.fit_weights(gru, np.full(buckets.size, 0.9), buckets)
    wrong = word_votes.fit_weights(gru, np.zeros(buckets.size), buckets)
    assert all(w > 0.8 for w in right) and all(w == 0.0 for w in wrong)


def test_a_model_without_word_weights_gets_the_defaults(tiny_model):
    from dataclasses import replace
    assert len(tiny_model.info.match["word_weights"]) == WEIGHTS         # fitted when trained
    old = replace(tiny_model.info, match={"weights": [0.1] * 6})
    assert mixer_from_info(old).word_weights == word_votes.VOTE_WEIGHTS
    assert mixer_from_info(old).weights == (0.1,) * 6
    bad = replace(tiny_model.info, match={"weights": [0.1] * 6, "word_weights": [2.0] * WEIGHTS})
    assert mixer_from_info(bad).word_weights == word_votes.VOTE_WEIGHTS
