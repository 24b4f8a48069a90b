"""The buffer's own words lead the suggestion: for the word the cursor is in (what CTRL-N would offer),
and at a word start, the word that followed the last word and separator the last time."""
import threading

from textgen_core import load_model
from textgen_core.decode import DecodeOptions, decode
from textgen_core.memory.buffer_words import MAX_OCCURRENCES, WORD_SEARCH_BYTES, next_word, word_completions
from textgen_core.serve.engine import Engine


def test_the_most_recent_earlier_words_with_the_typed_prefix_complete_it():
    assert word_completions(b"def fold_lines(x):\n    return fo") == [b"ld_lines"]
    assert word_completions(b"a fox, a forest and fold_lines; fo") == [b"ld_lines", b"rest"]      # most recent first
    assert word_completions(b"fold_lines forest fold_lines fo", most=3) == [b"ld_lines", b"rest"]  # different ones


def test_no_completion_without_a_prefix_a_longer_word_or_a_word_start():
    assert word_completions(b"fold_lines f") == []                # one typed byte is not a prefix yet
    assert word_completions(b"fold_lines fold_lines") == []       # nothing longer seen
    assert word_completions(b"returns x; return y; return") == []   # last seen whole: likely done
    assert word_completions(b"return y; returns x; return") == [b"s"]
    assert word_completions("cafeteria x café y caf".encode()) == [b"eteria"]   # café is not caf, whole
    assert word_completions(b"unfold_lines fo") == []             # "fo" inside a word is no word start
    assert word_completions(b"fold_lines ") == []                 # the cursor is not in a word
    assert word_completions(b"fo") == []
    assert word_completions("fête fê".encode()) == []             # no guessing inside UTF-8
    assert word_completions("beta; fübe".encode()) == []          # nor after a UTF-8 letter


def test_only_the_latest_occurrences_are_searched_for_a_different_word():
    assert word_completions(b"forest " + b"fold " * (MAX_OCCURRENCES - 1) + b"fo") == [b"ld", b"rest"]
    assert word_completions(b"forest " + b"fold " * MAX_OCCURRENCES + b"fo") == [b"ld"]


def test_only_the_last_search_bytes_are_searched():
    far = b"fold_lines" + b" " * WORD_SEARCH_BYTES + b" fo"
    assert word_completions(far) == []
    near = b"fold_lines" + b" " * (WORD_SEARCH_BYTES - 20) + b" fo"
    assert word_completions(near) == [b"ld_lines"]


def test_where_the_two_latest_words_differ_the_part_they_share_leads_alone(tiny_model_dir):
    model = load_model(tiny_model_dir)
    context = b"indent_cur = 1\nindent_width = 2\nx = ind"
    logits, state = model.prime(context)
    options = DecodeOptions(max_chars=30)
    assert decode(model.backend, state, logits, options, memory=context, mixer=model.mixer) == ["ent_"]
    cycled = decode(model.backend, state, logits, DecodeOptions(max_chars=30, n=3), memory=context, mixer=model.mixer)
    assert cycled[0] == "ent_" and cycled[1].startswith("ent_width") and cycled[2].startswith("ent_cur")
    one_longer = b"parse(a)\npars = 1\nx = pa"                         # "rs" is shared and a word: offered once
    logits, state = model.prime(one_longer)
    cycled = decode(model.backend, state, logits, DecodeOptions(max_chars=30, n=2), memory=one_longer,
                    mixer=model.mixer)
    assert cycled[0] == "rs" and cycled[1].startswith("rse")
    agreeing = b"indent_width = 1\nindent_width = 2\nx = ind"                # one word: it leads, and text follows
    logits, state = model.prime(agreeing)
    assert decode(model.backend, state, logits, options, memory=agreeing, mixer=model.mixer)[0].startswith("ent_width")


def test_the_greedy_suggestion_starts_with_the_buffers_word_and_the_model_goes_on(tiny_model_dir):
    context = "we must zonk_the_quux tomorrow.\nthen the zo"
    with_words = load_model(tiny_model_dir)
    assert with_words.complete(context, max_chars=30).startswith("nk_the_quux")
    without = load_model(tiny_model_dir, use_match=False)             # the buffer as memory switched off
    assert not without.complete(context, max_chars=30).startswith("nk_the_quux")


def test_streamed_parts_are_prefixes_of_the_final_text_that_starts_with_the_word(tiny_model_dir):
    engine = Engine(load_model(tiny_model_dir))
    parts, done = [], threading.Event()

    def callback(completion):
        parts.append((completion.final, completion.texts[0] if completion.texts else ""))
        if completion.final:
            done.set()

    try:
        engine.submit("buf", "we must zonk_the_quux tomorrow.\nthen the zo",
                      DecodeOptions(max_chars=30, stream_every=2), callback)
        assert done.wait(10)
    finally:
        engine.close()
    final = parts[-1][1]
    assert final.startswith("nk_the_quux")
    assert all(final.startswith(text) for is_final, text in parts[:-1])


def test_at_a_word_start_the_word_that_last_followed_the_same_word_and_separator_leads():
    assert next_word(b"self.config = 1\nx = self.") == b"config"
    assert next_word(b"self.a1 = 1\nself.b2 = 2\nself.") == b"b2"             # most recent wins
    assert next_word(b"vim.api.nvim_buf_get_lines(0)\nvim.api.") == b"nvim_buf_get_lines"
    assert next_word(b"foo (bar) and foo ") == b"(bar"                         # punctuation travels with it
    assert next_word(b"the cat sat; the ") == b"cat"


def test_no_next_word_without_a_word_start_the_same_separator_or_a_word_after_it():
    assert next_word(b"the cat sat; the") == b""            # in a word: word_completions' case
    assert next_word(b"the cat sat; the,") == b""           # "the," never occurred
    assert next_word(b"the cat\nthe\n") == b""             # a line break is no separator
    assert next_word(b"the a; the ") == b""                 # one byte is no word to suggest
    assert next_word(b"bathe cat; the ") == b""             # "the" inside a word is not the word
    assert next_word("fête cat; fête ".encode()) == b""     # no guessing inside UTF-8
    assert next_word(b"  ") == b"" and next_word(b"") == b""
    assert next_word(b"the cat" + b" " * WORD_SEARCH_BYTES + b"; the ") == b""


def test_the_greedy_suggestion_at_a_word_start_starts_with_the_buffers_next_word(tiny_model_dir):
    context = "we call zonk_the_quux daily.\nthen we call "
    assert load_model(tiny_model_dir).complete(context, max_chars=30).startswith("zonk_the_quux")
    without = load_model(tiny_model_dir, use_match=False)             # the buffer as memory switched off
    assert not without.complete(context, max_chars=30).startswith("zonk_the_quux")
