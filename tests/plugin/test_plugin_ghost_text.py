"""End to end: ghost text in a real Neovim, typed into with nvim_input, from a real tiny model.

One Neovim serves the whole module; each test starts from a fresh buffer and the base options.
"""
from __future__ import annotations

import pytest

from tests.nvim_harness import (
    Screen,
    buffer_text,
    cursor,
    fresh_buffer,
    ghost,
    idle,
    lua,
    mode,
    requests,
    set_options,
    suggest,
    type_and_wait,
    wait_for,
)
from textgen_core.decode import DecodeOptions
from textgen_core.serve.engine import fresh_completion


@pytest.fixture
def vim(nvim, tiny_model_dir):
    """The module's Neovim in normal mode with one empty buffer and the base options."""
    fresh_buffer(nvim, tiny_model_dir)
    lua(nvim, "_G.fake_menu = nil")
    wait_for(lambda: idle(nvim), what="textgen to be idle")
    return nvim


# -- ghost text ------------------------------------------------------------------------------------

def test_typing_shows_the_models_greedy_continuation_as_ghost_text(vim, tiny_model):
    expected = suggest(tiny_model, "the qu")
    assert expected, "the tiny model should continue 'the qu'"
    shown = type_and_wait(vim, "ithe qu", expected)
    assert (shown.row, shown.col) == (0, len("the qu"))
    assert shown.hl_group == "TextGenSuggestion"
    assert buffer_text(vim) == "the qu"
    assert mode(vim) == "i"


def test_ghost_text_highlight_is_a_grey_of_its_own_by_default(vim):
    assert vim.api.get_hl(0, {"name": "TextGenSuggestion"}) == {"link": "TextGenGrey"}
    assert vim.api.get_hl(0, {"name": "TextGenGrey"}) == {"fg": 0x808080, "ctermfg": 244}


def test_tab_inserts_exactly_the_ghost_text(vim, tiny_model):
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == "the qu" + expected, what="the accepted text")
    assert cursor(vim) == (1, len(("the qu" + expected).encode()))
    assert mode(vim) == "i"


def test_tab_with_nothing_shown_inserts_a_tab(vim):
    set_options(vim, auto_trigger=False)
    vim.input("ix<Tab>y")
    wait_for(lambda: buffer_text(vim) == "x\ty", what="a real Tab")
    assert ghost(vim) is None


def test_tab_with_nothing_shown_follows_expandtab(vim):
    set_options(vim, auto_trigger=False)
    vim.command("setlocal expandtab shiftwidth=4 softtabstop=4")
    vim.input("i<Tab>y")
    wait_for(lambda: buffer_text(vim) == "    y", what="spaces from a real Tab")


def test_typing_a_matching_character_shrinks_the_suggestion_without_a_new_request(vim, tiny_model):
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    wait_for(lambda: idle(vim), what="the request to finish")
    asked = requests(vim)
    vim.input(expected[:3])
    shrunk = wait_for(lambda: (g := ghost(vim)) and g.col == len("the qu") + 3 and g, what="the shrunk ghost")
    assert shrunk.text == expected[3:]
    assert buffer_text(vim) == "the qu" + expected[:3]
    assert idle(vim) and requests(vim) == asked


def test_a_non_matching_character_dismisses_the_suggestion(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    expected = suggest(tiny_model, "the qu")
    vim.input("ithe qu")
    wait_for(lambda: buffer_text(vim) == "the qu")
    type_and_wait(vim, "<Cmd>TextGenComplete<CR>", expected)
    assert not expected.startswith("Z")
    vim.input("Z")
    wait_for(lambda: ghost(vim) is None, what="the ghost text to go")
    assert buffer_text(vim) == "the quZ"


def test_a_non_matching_character_brings_the_suggestion_for_the_new_text(vim, tiny_model):
    first = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", first)
    then = suggest(tiny_model, "the qua")
    vim.input("a")
    wait_for(lambda: idle(vim) and buffer_text(vim) == "the qua", what="the new request")
    wait_for(lambda: (ghost(vim).text if ghost(vim) else "") == then, what=f"ghost text {then!r}")


# -- calm while typing: what the screen shows, frame by frame ------------------------------------

@pytest.fixture
def screen(vim):
    ui = Screen(vim)
    yield ui
    ui.close()


def test_typing_through_the_suggestion_shrinks_it_in_the_same_frame(vim, screen, tiny_model):
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    wait_for(lambda: screen.row(0) == "the qu" + expected, what="the ghost text on screen")
    seen = len(screen.frames)
    vim.input(expected[0])
    wait_for(lambda: buffer_text(vim) == "the qu" + expected[0] and len(screen.frames) > seen
             and screen.row(0) == "the qu" + expected, what="the shrunk ghost text on screen")
    frames = {frame[0].rstrip() for frame in screen.frames[seen:]}
    assert frames == {"the qu" + expected}, frames      # never without it, never doubled


def test_a_new_suggestion_replaces_the_old_one_without_a_blank_frame(vim, screen, tiny_model):
    set_options(vim, linger_ms=5000)       # the test machine may be slow; the rule is the same
    first = suggest(tiny_model, "the qu")
    then = suggest(tiny_model, "the qua")
    assert then and not first.startswith("a"), (first, then)
    type_and_wait(vim, "ithe qu", first)
    wait_for(lambda: screen.row(0) == "the qu" + first, what="the first ghost text on screen")
    seen = len(screen.frames)
    vim.input("a")
    wait_for(lambda: screen.row(0) == "the qua" + then, what="the new ghost text on screen")
    rows = [frame[0].rstrip() for frame in screen.frames[seen:]]
    assert "the qua" not in rows, rows                   # no frame with the line bare
    new = [row for row in rows if row not in ("the qu" + first, "the qua" + first)]
    assert new and all(then.startswith(row[len("the qua"):]) for row in new), rows   # then only grows
    swapped = new[0][len("the qua"):]                    # the old one goes for a whole word, not a stub
    after = then[len(swapped):][:1]                      # (a frame's row has lost its trailing blanks)
    assert not (after.isalnum() or after == "_"), rows


def test_an_outdated_suggestion_goes_after_linger_ms_even_while_typing_goes_on(vim, tiny_model):
    """The linger is counted from the first key that outdated the ghost: later keys do not restart it
    (one that did would keep an outdated ghost up for as long as typing goes on). Checked on the
    timer itself, so no typing pace is needed."""
    first = suggest(tiny_model, "the qu")
    assert not first.startswith("z")
    type_and_wait(vim, "ithe qu", first)
    set_options(vim, linger_ms=3000, debounce_ms=5000)   # no successor comes to replace it meanwhile
    due_in = "return require('textgen.suggestion').linger_due_in()"
    vim.input("z")
    first_due = wait_for(lambda: lua(vim, due_in), what="the linger to start")
    assert ghost(vim) is not None
    since = lua(vim, "return vim.uv.now()")
    wait_for(lambda: lua(vim, "return vim.uv.now()") - since >= 500, what="half a second on Neovim's clock")
    for i in range(5):
        vim.input("z")
        wait_for(lambda i=i: buffer_text(vim).endswith("z" * (i + 2)), what="the key")
    assert lua(vim, due_in) <= first_due - 400, "a later key restarted the linger"
    wait_for(lambda: ghost(vim) is None, what="the outdated ghost to go")
    assert buffer_text(vim) == "the qu" + "z" * 6


def test_escape_clears_the_ghost_text(vim, tiny_model):
    type_and_wait(vim, "ithe qu", suggest(tiny_model, "the qu"))
    vim.input("<Esc>")
    wait_for(lambda: mode(vim) == "n" and ghost(vim) is None, what="normal mode without ghost text")
    assert buffer_text(vim) == "the qu"


def test_dismiss_key_clears_the_ghost_text_and_asks_for_nothing(vim, tiny_model):
    type_and_wait(vim, "ithe qu", suggest(tiny_model, "the qu"))
    asked = requests(vim)
    vim.input("<C-]>")
    wait_for(lambda: ghost(vim) is None and idle(vim), what="the ghost text to go")
    assert requests(vim) == asked and buffer_text(vim) == "the qu" and mode(vim) == "i"


def type_and_accept(vim, tiny_model) -> str:
    """Type "the qu", accept the ghost text with <Tab>; returns the accepted text."""
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == "the qu" + expected)
    return expected


def test_undo_removes_the_accepted_text_in_one_step(vim, tiny_model):
    type_and_accept(vim, tiny_model)
    vim.input("<Esc>u")
    wait_for(lambda: buffer_text(vim) == "the qu", what="undo of the accepted text alone")
    vim.input("u")
    wait_for(lambda: buffer_text(vim) == "", what="undo of the typed text")


def test_text_typed_after_accepting_is_its_own_undo_step(vim, tiny_model):
    expected = type_and_accept(vim, tiny_model)
    vim.input(" ok<Esc>")
    wait_for(lambda: mode(vim) == "n" and buffer_text(vim) == "the qu" + expected + " ok")
    vim.input("u")
    wait_for(lambda: buffer_text(vim) == "the qu" + expected, what="undo of ' ok' alone")


def test_multibyte_text_is_accepted_intact(vim, tiny_model):
    expected = suggest(tiny_model, "naïve ca")
    assert "日本" in expected, expected
    shown = type_and_wait(vim, "inaïve ca", expected)
    assert shown.col == len("naïve ca".encode())
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == "naïve ca" + expected, what="the multibyte text")
    assert cursor(vim) == (1, len(("naïve ca" + expected).encode()))


def test_accept_word_takes_one_word_and_keeps_the_rest_shown(vim, tiny_model):
    # On a line of its own, as in the training text: after a bare "naïve" at the start of the buffer
    # a tiny model may skip its next words, depending on the machine's floating-point rounding.
    expected = suggest(tiny_model, "\nnaïve")
    assert expected.startswith(" café"), expected
    type_and_wait(vim, "i<CR>naïve", expected)
    vim.input("<M-Right>")
    wait_for(lambda: buffer_text(vim) == "\nnaïve café", what="one word accepted")
    rest = wait_for(lambda: (g := ghost(vim)) and (g.row, g.col) == (1, len("naïve café".encode())) and g)
    assert rest.text == expected[len(" café"):]
    vim.input("<M-Right>")
    wait_for(lambda: buffer_text(vim) == "\nnaïve café 日本", what="the next (multibyte) word")


def test_where_the_buffers_latest_words_differ_their_shared_part_is_shown_and_accepted(vim, tiny_model):
    context = "indent_cur = 1\nindent_width = 2\nx = ind"
    assert suggest(tiny_model, context) == "ent_"
    type_and_wait(vim, "i" + context.replace("\n", "<CR>"), "ent_")
    vim.input("<M-Right>")
    wait_for(lambda: buffer_text(vim) == context + "ent_", what="the shared part accepted")
    after = suggest(tiny_model, context + "ent_w")
    assert after.startswith("idth"), after              # "indent_w": one word of the buffer fits, and text follows
    type_and_wait(vim, "w", after)


def test_accept_word_takes_a_line_break_and_its_indentation_first(vim, tiny_model):
    context = "def greet(name):"
    expected = suggest(tiny_model, context)
    assert expected.startswith("\n    return"), expected
    type_and_wait(vim, "i" + context, expected)
    vim.input("<M-Right>")
    wait_for(lambda: buffer_text(vim) == context + "\n    ", what="the line break and the indentation")
    assert cursor(vim) == (2, 4)
    rest = wait_for(lambda: (g := ghost(vim)) and (g.row, g.col) == (1, 4) and g)
    assert rest.text == expected[len("\n    "):]
    vim.input("<M-Right>")
    wait_for(lambda: buffer_text(vim) == context + "\n    return", what="the word after the indentation")


def test_multi_line_suggestion_shows_below_and_is_accepted_whole(vim, tiny_model):
    context = "def greet(name):"
    expected = suggest(tiny_model, context)
    assert expected.startswith("\n") and expected.strip(), expected
    shown = type_and_wait(vim, "i" + context, expected)
    assert (shown.row, shown.col) == (0, len(context))
    details = vim.api.buf_get_extmarks(0, vim.api.create_namespace("textgen"), 0, -1, {"details": True})[0][3]
    assert details["virt_lines"] and "virt_text" not in details
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == context + expected, what="the lines accepted")
    lines = (context + expected).split("\n")
    assert cursor(vim) == (len(lines), len(lines[-1].encode()))


def test_accept_line_takes_the_next_line_of_a_multi_line_suggestion(vim, tiny_model):
    set_options(vim, multiline=True)
    context = "def greet(name):"
    expected = suggest(tiny_model, context, stop_at_newline=False)
    first_line = "\n" + expected[1:].split("\n")[0]
    assert len(expected) > len(first_line) + 1, expected
    type_and_wait(vim, "i" + context, expected)
    vim.input("<M-Down>")
    wait_for(lambda: buffer_text(vim) == context + first_line, what="one line accepted")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected[len(first_line):], what="the rest still shown")


def test_backspace_shows_nothing_new(vim, tiny_model):
    type_and_wait(vim, "ithe quick", suggest(tiny_model, "the quick"))
    wait_for(lambda: idle(vim))
    asked = requests(vim)
    vim.input("<BS><BS><BS><BS>")
    wait_for(lambda: buffer_text(vim) == "the q" and idle(vim), what="the deletions")
    assert ghost(vim) is None and requests(vim) == asked
    vim.input("<C-w>")
    wait_for(lambda: buffer_text(vim) == "the " and idle(vim))
    assert ghost(vim) is None and requests(vim) == asked


def test_a_stale_result_is_never_shown(vim):
    set_options(vim, auto_trigger=False)
    vim.current.buffer[:] = ["the qu"]
    vim.current.window.cursor = (1, 5)
    dropped = lua(vim, "return require('textgen.suggestion').stats.dropped_stale")
    # Ask, then change the text before the answer can arrive (both in one go on Neovim's loop).
    lua(vim, """
        require('textgen.suggestion').request({ explicit = true })
        vim.api.nvim_buf_set_text(0, 0, 6, 0, 6, { 'ack' })
    """)
    wait_for(lambda: idle(vim), what="the answer to arrive")
    assert ghost(vim) is None
    assert lua(vim, "return require('textgen.suggestion').stats.dropped_stale") > dropped


def test_textgen_complete_works_in_normal_mode(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    vim.current.buffer[:] = ["the qu"]
    vim.current.window.cursor = (1, 5)
    expected = suggest(tiny_model, "the qu")
    shown = type_and_wait(vim, ":TextGenComplete<CR>", expected)
    assert (shown.row, shown.col) == (0, 6) and mode(vim) == "n"
    vim.input("a<Tab>")
    wait_for(lambda: buffer_text(vim) == "the qu" + expected, what="accepted after `a`")


def test_accept_in_normal_mode_leaves_the_cursor_on_the_last_character(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    vim.current.buffer[:] = ["naïve ca"]
    vim.current.window.cursor = (1, len("naïve c".encode()))
    expected = suggest(tiny_model, "naïve ca")
    type_and_wait(vim, ":TextGenComplete<CR>", expected)
    assert lua(vim, "return require('textgen').accept()")
    text = "naïve ca" + expected
    assert buffer_text(vim) == text and mode(vim) == "n"
    assert cursor(vim) == (1, len(text.encode()) - len(text[-1].encode()))


def test_complete_with_bang_offers_alternatives_to_cycle_through(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    alternatives = [text.rstrip() for text in fresh_completion(tiny_model, "the ", DecodeOptions(n=3))]
    assert len(set(alternatives)) == len(alternatives) >= 2, alternatives
    vim.input("ithe ")
    wait_for(lambda: buffer_text(vim) == "the ")
    type_and_wait(vim, "<Cmd>TextGenComplete!<CR>", alternatives[0])
    type_and_wait(vim, "<M-]>", alternatives[1])
    type_and_wait(vim, "<M-[>", alternatives[0])
    type_and_wait(vim, "<M-[>", alternatives[-1])
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == "the " + alternatives[-1], what="the alternative accepted")


def test_next_with_one_suggestion_fetches_alternatives(vim, tiny_model):
    alternatives = [text.rstrip() for text in fresh_completion(tiny_model, "the ", DecodeOptions(n=3))]
    type_and_wait(vim, "ithe ", alternatives[0])
    type_and_wait(vim, "<M-]>", alternatives[1])


# -- where suggestions appear ---------------------------------------------------------------------

def test_excluded_filetypes_get_nothing(vim, tiny_model):
    set_options(vim, filetypes={"markdown": False})
    vim.command("setfiletype markdown")
    asked = requests(vim)
    vim.input("ithe qu")
    wait_for(lambda: buffer_text(vim) == "the qu" and idle(vim))
    vim.input("<Cmd>TextGenComplete<CR>")
    wait_for(lambda: idle(vim))
    assert ghost(vim) is None and requests(vim) == asked
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == "the qu\t", what="a real Tab")


def test_very_long_lines_get_no_suggestions_while_typing_but_on_request(vim):
    long_line = "the quick brown fox " * 600                       # 12,000 bytes: minified code, a log
    vim.current.buffer[:] = [long_line.rstrip()]
    asked = requests(vim)
    vim.input("A the qu")
    wait_for(lambda: buffer_text(vim).endswith("fox the qu") and idle(vim), what="the typed text")
    assert ghost(vim) is None and requests(vim) == asked
    vim.input("<Cmd>TextGenComplete<CR>")
    wait_for(lambda: ghost(vim) is not None, what="the requested suggestion")
    assert requests(vim) == asked + 1


def test_other_filetypes_still_get_suggestions(vim, tiny_model):
    set_options(vim, filetypes={"markdown": False})
    vim.command("setfiletype text")
    type_and_wait(vim, "ithe qu", suggest(tiny_model, "the qu"))


@pytest.mark.parametrize("buftype", ["nofile", "prompt"])
def test_no_suggestions_in_special_buffers(vim, buftype):
    vim.command(f"setlocal buftype={buftype}")
    asked = requests(vim)
    vim.input("ithe qu")
    wait_for(lambda: "the qu" in buffer_text(vim) and idle(vim))
    assert ghost(vim) is None and requests(vim) == asked


def test_terminal_buffers_are_excluded(vim):
    vim.command("terminal")
    try:
        reason = lua(vim, "return require('textgen').status().disabled_reason")
        assert reason and "terminal" in reason
    finally:
        vim.command("bwipeout!")


def test_mid_line_never_shows_nothing_before_other_text(vim, tiny_model):
    set_options(vim, mid_line="never")
    vim.current.buffer[:] = ["the qu)"]
    asked = requests(vim)
    vim.input("A<Left>")
    wait_for(lambda: mode(vim) == "i" and cursor(vim) == (1, 6) and idle(vim))
    vim.input("i")
    wait_for(lambda: buffer_text(vim) == "the qui)" and idle(vim))
    assert ghost(vim) is None and requests(vim) == asked


def test_mid_line_closing_shows_before_closing_brackets_only(vim, tiny_model):
    vim.current.buffer[:] = ["(the qu)", "the qu and more"]
    vim.current.window.cursor = (1, 6)
    expected = suggest(tiny_model, "(the qu")
    shown = type_and_wait(vim, "a", expected)
    assert (shown.row, shown.col) == (0, 7)
    vim.input("<Esc>")
    asked = requests(vim)
    vim.current.window.cursor = (2, 5)
    vim.input("a")
    wait_for(lambda: mode(vim) == "i" and idle(vim))
    assert ghost(vim) is None and requests(vim) == asked


def test_before_closing_characters_the_suggestion_stops_where_they_are(vim, tiny_model):
    # The model writes the `")` that the line already has after the cursor: shown and accepted
    # without it, so that accepting leaves one `")`, not two (and the next suggestion no third).
    line = 'print("the quick brown fox")'
    vim.current.buffer[:] = [line, line, 'print("")']
    vim.current.window.cursor = (3, 6)
    raw = suggest(tiny_model, f"{line}\n{line}\nprint(\"the qu")
    assert raw.endswith('")'), f"the model should close the line as it did twice: {raw!r}"
    shown = type_and_wait(vim, "athe qu", raw[:-2])
    assert (shown.row, shown.col) == (2, len('print("the qu'))
    vim.input("<Tab>")
    wait_for(lambda: vim.current.buffer[2] == line, what="the line closed once")
    assert cursor(vim) == (3, len('print("the quick brown fox'))


def test_fitting_a_suggestion_before_the_rest_of_the_line(vim):
    cases = [('World")', '")', "World"), ("f(x), y)", ")", "f(x), y"), ('World") # note', ")", 'World"'),
             ("one)\ntwo)", ")", "one"), ("two\nlines", ")", "two"), ('")', '")', ""), ("x]", " ] ", "x"),
             ("bar)", ");", "bar"), ("self) -> None:", "):", "self"), ('World"\nnext', '")', "World"),
             ("don't stop'", "'", "don't stop"), ("U.S. store.", ".", "U.S"), ("3.14 m.", ".", "3.14 m"),
             ('say \\"hi\\"" end', '"', 'say \\"hi\\"'), ('f("a") + b")', '")', 'f("a") + b'),
             ("abc", "", "abc"), ("abc\ndef", "  ", "abc\ndef"), ("x) y", "and more)", "x) y")]
    for text, after, fitted in cases:
        assert lua(vim, "return require('textgen.context').fit_before(...)", text, after) == fitted, (text, after)


def test_mid_line_always_shows_before_any_text(vim, tiny_model):
    set_options(vim, mid_line="always")
    vim.current.buffer[:] = ["the qu and more"]
    vim.current.window.cursor = (1, 5)
    type_and_wait(vim, "a", suggest(tiny_model, "the qu"))


# -- completion menus ----------------------------------------------------------------------------

def test_ghost_text_hides_and_tab_keeps_its_meaning_while_the_popup_menu_is_open(vim, tiny_model):
    vim.current.buffer[:] = ["quartz quill", ""]
    vim.current.window.cursor = (2, 0)
    type_and_wait(vim, "ithe qu", suggest(tiny_model, "quartz quill\nthe qu"))
    vim.input("<C-n>")
    wait_for(lambda: vim.funcs.pumvisible() == 1, what="the popup menu")
    assert ghost(vim) is None
    vim.input("<Tab>")
    wait_for(lambda: vim.current.buffer[1] in ("the quartz\t", "the quill\t"), what="Tab's usual meaning")


def test_menu_hook_gives_tab_back_to_the_menu(vim, tiny_model):
    lua(vim, "require('textgen').setup({ menu_visible = function() return _G.fake_menu == true end })")
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    lua(vim, "_G.fake_menu = true")
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == "the qu\t", what="Tab going to the (pretend) menu")
    wait_for(lambda: idle(vim))
    assert ghost(vim) is None


def test_tab_falls_back_to_an_earlier_mapping(vim):
    set_options(vim, auto_trigger=False)
    vim.command("inoremap <Tab> FALLBACK")
    try:
        set_options(vim)            # setup() maps the keys again, keeping the user's <Tab> as fallback
        vim.input("i<Tab>")
        wait_for(lambda: buffer_text(vim) == "FALLBACK", what="the earlier <Tab> mapping")
    finally:
        set_options(vim, keys={"accept": False})
        vim.command("silent! iunmap <Tab>")
        set_options(vim, keys={"accept": "<Tab>"})


SCREEN_ROWS = """
vim.cmd('redraw')
local rows = {}
for r = 1, vim.o.lines do
  local cells = {}
  for c = 1, vim.o.columns do cells[#cells + 1] = vim.fn.screenstring(r, c) end
  rows[#rows + 1] = table.concat(cells)
end
return rows
"""


def test_ghost_text_shows_in_the_window_typed_in_only(vim, tiny_model):
    """A split of the same buffer showed the suggestion in both windows (a new user's trial)."""
    if not lua(vim, "return vim.api.nvim__ns_set ~= nil"):
        pytest.skip("Neovim before 0.11 cannot scope ghost text to a window")
    vim.command("split")
    try:
        expected = suggest(tiny_model, "the qu")
        type_and_wait(vim, "ithe qu", expected)
        rows = lua(vim, SCREEN_ROWS)
        assert sum(row.startswith("the qu") for row in rows) == 2, rows            # the line, in both windows
        assert sum(row.startswith("the qu" + expected[:10]) for row in rows) == 1, rows
    finally:
        vim.input("<Esc>")
        vim.command("only")


def test_keys_set_in_g_textgen_after_the_plugin_loaded_are_mapped_at_the_next_insert(vim, tiny_model):
    """A plugin manager's `config` sets vim.g.textgen after the plugin loaded, without setup(): its
    keys are mapped when Insert mode is next entered (they were read at load only: <C-l> inserted a
    ^L and <Tab> still accepted), and a key the user mapped since is left alone while they stay."""
    lua(vim, "vim.g.textgen = vim.tbl_extend('force', vim.g.textgen, { keys = { accept = '<C-l>' } })")
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    assert "textgen" not in (vim.funcs.maparg("<Tab>", "i", False, True) or {}).get("desc", "")
    vim.input("<C-l>")
    wait_for(lambda: buffer_text(vim) == "the qu" + expected, what="accept on <C-l>")
    vim.input("<Esc>")
    vim.command("inoremap <C-l> MINE")
    vim.input("o")
    wait_for(lambda: mode(vim) == "i", what="insert mode")
    vim.input("<C-l>")
    wait_for(lambda: vim.current.buffer[-1] == "MINE", what="the user's own <C-l>")


def test_a_key_name_without_its_brackets_is_refused_not_mapped_as_letters(vim, tiny_model):
    """keys = { accept = 'Tab' } mapped the letters T, a, b: typing "Table" after a suggestion ate them
    and accepted it. It is refused in one line (the default kept), as is a <name> that is no key."""
    set_options(vim, keys={"accept": "Tab", "dismiss": "<Nope>"})
    problems = lua(vim, "return select(2, require('textgen.config').validate(vim.g.textgen))")
    assert 'g:textgen.keys.accept = "Tab" would map the letters T, a, b: write "<Tab>"' in problems, problems
    assert any("<Nope> is not a key's name" in p for p in problems), problems
    assert vim.funcs.maparg("T", "i") == "" and vim.funcs.maparg("<Nope>", "i") == ""
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == "the qu" + expected, what="accept on the default <Tab>")


def test_keys_can_be_remapped_and_disabled(vim, tiny_model):
    set_options(vim, keys={"accept": "<C-l>"})
    # <Tab> is given back what it did before (Neovim's own snippet <Tab>, where it has one)
    assert "textgen" not in (vim.funcs.maparg("<Tab>", "i", False, True) or {}).get("desc", "")
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    vim.input("<Tab>")
    wait_for(lambda: buffer_text(vim) == "the qu\t")
    vim.input("<BS>")
    wait_for(lambda: buffer_text(vim) == "the qu")
    vim.input("<Esc>a")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected)
    vim.input("<C-l>")
    wait_for(lambda: buffer_text(vim) == "the qu" + expected, what="accept on <C-l>")


# -- what the ghost text looks like where the line holds more than text ---------------------------
# Drawn by ghost.render itself where the test needs a suggestion of a given shape (a Tab, a bracket),
# read back from the screen Neovim draws.

def draw(vim, row: int, col: int, text: str) -> None:
    lua(vim, "require('textgen.ghost').render(0, ...)", row, col, text)


def test_ghost_text_keeps_its_own_look_beside_a_highlighted_bracket(vim, screen):
    """After `f(` with `)` next (an autopair), matchparen highlights the `)` under the cursor; ghost text
    drawn at that column took that highlight's colours and bold (hl_mode "combine"): it looked like
    typed, selected text (a new user's trial)."""
    set_options(vim, auto_trigger=False)
    vim.current.buffer[:] = ["f()"]
    vim.input("A<Left>")
    wait_for(lambda: mode(vim) == "i" and cursor(vim) == (1, 2), what="insert mode between the brackets")
    lua(vim, "vim.fn.matchaddpos('MatchParen', {{1, 2}, {1, 3}}, 10)")
    try:
        draw(vim, 0, 2, "GHOST")
        wait_for(lambda: screen.row(0) == "f(GHOST)", what="the ghost text between the brackets")
        own = {"foreground": lua(vim, "return vim.api.nvim_get_hl(0, {name = 'TextGenSuggestion', link = false}).fg")}
        assert [screen.look(0, col) for col in range(2, 7)] == [own] * 5
        assert screen.look(0, 1) == screen.look(0, 7) and screen.look(0, 7).get("background")   # matchparen's
    finally:
        draw(vim, 0, 0, "")
        lua(vim, "vim.fn.clearmatches()")
        vim.input("<Esc>")


@pytest.mark.parametrize("options", ["tabstop=8", "tabstop=4", "tabstop=8 list listchars=tab:>-",
                                     "tabstop=4 list listchars=tab:<->"])
def test_tabs_in_ghost_text_are_drawn_as_the_accepted_line_will_show_them(vim, options):
    """A Tab was drawn as 'tabstop' blanks wherever it fell (and as blanks with 'list' on): the text
    after it moved when accepted."""
    set_options(vim, auto_trigger=False)
    vim.command("setlocal " + options)
    try:
        vim.current.buffer[:] = ["name:"]
        vim.input("A")
        wait_for(lambda: mode(vim) == "i", what="insert mode")
        draw(vim, 0, 5, "\tAlice\tage:\t3")
        shown = lua(vim, SCREEN_ROWS)[0].rstrip()
        draw(vim, 0, 0, "")
        vim.current.buffer[:] = ["name:\tAlice\tage:\t3"]
        assert shown == lua(vim, SCREEN_ROWS)[0].rstrip()
    finally:
        vim.input("<Esc>")
        vim.command("setlocal tabstop=8 nolist listchars&")


def multi_line_suggestion(tiny_model) -> tuple[str, str]:
    contexts = ["def greet(na", "def greet(name", "class Fo", "def ma", "import o"]
    found = [(c, s) for c in contexts if "\n" in (s := suggest(tiny_model, c, stop_at_newline=False))
             and s.split("\n")[0]]
    assert found, "the tiny model should go on past a line's end after one of these"
    return found[0]


@pytest.mark.parametrize("window_rows", [None, 1])
def test_lines_of_a_suggestion_below_the_window_are_scrolled_into_view_or_left_out(vim, tiny_model, window_rows):
    """Neovim does not scroll for virtual lines: on the window's last line, a multi-line suggestion
    showed its first line and <Tab> inserted the lines under the window's edge too, unseen. The window
    scrolls now, the cursor's line kept in view; in a window too small for them they are left out, of
    the screen and of what <Tab> inserts."""
    set_options(vim, multiline=True)
    context, expected = multi_line_suggestion(tiny_model)
    first_line = expected.split("\n")[0]
    try:
        if window_rows:
            vim.command(f"split | resize {window_rows}")
        height = vim.current.window.height
        vim.current.buffer[:] = ["x"] * (height + 5)
        vim.command("normal! Gzb")
        vim.input("o")
        wait_for(lambda: mode(vim) == "i" and lua(vim, "return vim.fn.winline()") == height, what="the last row")
        shown_text = first_line if window_rows == 1 else expected
        type_and_wait(vim, context, shown_text)
        if window_rows is None:
            assert 1 <= lua(vim, "return vim.fn.winline()") < height                # scrolled, the cursor in view
        vim.input("<Tab>")
        wait_for(lambda: buffer_text(vim).endswith(context + shown_text), what="what was shown, accepted")
        assert len(vim.current.buffer) == height + 6 + shown_text.count("\n")
    finally:
        vim.input("<Esc>")
        vim.command("only")


def test_normal_mode_completion_goes_after_the_whole_character_under_the_cursor(vim, tiny_model):
    """`a` appends after a character with its composing marks (e + U+0301) or an emoji's modifier;
    :TextGenComplete in normal mode put the suggestion inside it, where nothing showed."""
    set_options(vim, auto_trigger=False)
    for line in ["cafe\u0301", "ok \U0001F44D\U0001F3FD"]:
        vim.current.buffer[:] = [line]
        vim.command("normal! $")
        expected = suggest(tiny_model, line)
        shown = type_and_wait(vim, ":TextGenComplete<CR>", expected)
        assert (shown.row, shown.col) == (0, len(line.encode())), line
        lua(vim, "require('textgen').dismiss()")
