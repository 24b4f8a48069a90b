"""`.`, macros and undo after accepting ghost text: end to end in a real Neovim, typed into with
nvim_input, from a real tiny model.

The model learned a function whose body holds Tabs, so that a suggestion can hold line breaks and
Tabs: both must come out exactly as suggested, whatever 'expandtab', 'autoindent', 'textwidth' or an
abbreviation would make of the same text typed, the first time and when repeated.
"""
from __future__ import annotations

import pytest

from tests.conftest import train_tiny_model
from tests.nvim_harness import (
    Screen,
    buffer_text,
    fresh_buffer,
    ghost,
    lua,
    messages,
    mode,
    requests,
    start_module_nvim,
    suggest,
    tabs_as_drawn,
    wait_for,
)
from textgen_core import load_model

TEXT = "\n".join(["def greet(name):\n\treturn\t'hello ' + name\n",
                  "the quick brown fox jumps over the lazy dog."] * 300) + "\n"
FUNCTION = "def greet(name):"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_tiny_model(tmp_path_factory.mktemp("models") / "tabs", steps=400, text=TEXT)


@pytest.fixture(scope="module")
def model(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def nvim(model_dir, tmp_path_factory):
    editor = start_module_nvim(model_dir, tmp_path_factory.mktemp("nvim-home"))
    yield editor
    editor.close()


@pytest.fixture
def vim(nvim, model_dir):
    """The module's Neovim in normal mode, in a fresh buffer holding the line "x", cursor on it."""
    fresh_buffer(nvim, model_dir)
    nvim.current.buffer[:] = ["x"]
    nvim.command("setlocal expandtab shiftwidth=4 softtabstop=4 autoindent smartindent")
    return nvim


def type_and_accept(vim, keys: str, expected: str, accept: str = "<Tab>", accepted: str | None = None) -> None:
    """Type `keys` (from normal mode), wait for the ghost text `expected`, accept it with `accept`
    (all of it, or `accepted`), and wait until the buffer ends with what was typed and accepted."""
    vim.input(keys)

    def shown() -> str:                                     # as ghost text draws Tabs, from the cursor's column
        return tabs_as_drawn(expected, vim.current.buffer.options["tabstop"],
                             lua(vim, "return vim.api.nvim_get_current_line():sub(1, vim.fn.col('.') - 1)"))
    wait_for(lambda: (g := ghost(vim)) and g.text == shown(), what=f"ghost text {expected!r}")
    typed = buffer_text(vim)
    vim.input(accept)
    wait_for(lambda: buffer_text(vim) == typed + (expected if accepted is None else accepted),
             what="the accepted text")


def escape(vim) -> None:
    vim.input("<Esc>")
    wait_for(lambda: mode(vim) == "n", what="normal mode")


def test_dot_repeats_the_insert_with_the_accepted_text(vim, model):
    expected = suggest(model, "x\nthe qu")
    assert expected.startswith("ick brown"), expected
    type_and_accept(vim, "othe qu", expected)
    escape(vim)
    vim.input("gg.")
    wait_for(lambda: buffer_text(vim) == "x\n" + "the qu" + expected + "\n" + "the qu" + expected, what="the repeat")
    vim.input("u")
    wait_for(lambda: buffer_text(vim) == "x\nthe qu" + expected, what="the repeat undone in one step")


def test_dot_repeats_a_multi_line_accept_with_tabs_exactly(vim, model):
    expected = suggest(model, "x\n" + FUNCTION)
    assert expected.startswith("\n\treturn\t"), expected            # a line break, then Tabs
    type_and_accept(vim, "o" + FUNCTION, expected)
    once = FUNCTION + expected
    assert buffer_text(vim) == "x\n" + once                          # no spaces for Tabs, no extra indent
    escape(vim)
    vim.input("gg.")
    wait_for(lambda: buffer_text(vim) == "x\n" + once + "\n" + once, what="the repeat, as exact")


def test_the_accepted_text_is_inserted_as_it_is_not_as_if_typed(vim, model):
    """Typed, "fox " would become "wolf " and the long line would be broken at 'textwidth'."""
    vim.command("iabbrev <buffer> fox wolf")
    vim.command("setlocal textwidth=20")
    expected = suggest(model, "x\nthe qu")
    assert " fox " in expected and len("the qu" + expected) > 20, expected
    type_and_accept(vim, "othe qu", expected)
    escape(vim)
    vim.input("gg.")
    wait_for(lambda: buffer_text(vim) == "x\n" + "the qu" + expected + "\n" + "the qu" + expected,
             what="the repeat, as it was accepted")


def test_dot_repeats_accept_word_and_accept_line(vim, model):
    vim.command("setlocal noautoindent nosmartindent")
    expected = suggest(model, "x\nthe qu")
    assert expected.startswith("ick brown "), expected
    type_and_accept(vim, "othe qu", expected, accept="<M-Right>", accepted="ick")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected[len("ick"):], what="the rest still shown")
    vim.input("<M-Right>")
    wait_for(lambda: buffer_text(vim) == "x\nthe quick brown", what="the next word")
    escape(vim)
    vim.input("gg.")
    wait_for(lambda: buffer_text(vim) == "x\nthe quick brown\nthe quick brown", what="both words repeated")

    lua(vim, "require('textgen').setup({ multiline = true })")
    expected = suggest(model, "x\nthe quick brown\nthe quick brown\n" + FUNCTION, stop_at_newline=False)
    line = "\n" + expected[1:].split("\n")[0]
    assert line.startswith("\n\treturn") and len(expected) > len(line), expected
    type_and_accept(vim, "Go" + FUNCTION, expected, accept="<M-Down>", accepted=line)
    escape(vim)
    vim.input("gg.")
    wait_for(lambda: vim.current.buffer[1:3] == [FUNCTION, line[1:]], what="the line repeated")


def test_a_macro_replays_the_accepted_text(vim, model):
    expected = suggest(model, "x\nthe qu")
    vim.input("qa")
    wait_for(lambda: vim.funcs.reg_recording() == "a", what="the recording")
    type_and_accept(vim, "othe qu", expected)
    escape(vim)
    vim.input("q")
    recorded = wait_for(lambda: (keys := vim.funcs.keytrans(vim.funcs.getreg("a"))) and "brown" in keys and keys,
                        what="the accepted text in the recording")
    assert "<Tab>" not in recorded, recorded                         # the accept, not the key that did it
    vim.input("gg@a")
    wait_for(lambda: buffer_text(vim) == "x\n" + "the qu" + expected + "\n" + "the qu" + expected,
             what="the replay")


def test_a_macro_replays_a_multi_line_accept_with_tabs_and_accept_word(vim, model):
    expected = suggest(model, "x\n" + FUNCTION)
    vim.input("qq")
    wait_for(lambda: vim.funcs.reg_recording() == "q", what="the recording")
    type_and_accept(vim, "o" + FUNCTION, expected, accept="<M-Right>", accepted="\n\t")
    vim.input("<M-Right>")
    wait_for(lambda: buffer_text(vim) == "x\n" + FUNCTION + "\n\treturn", what="the next word")
    escape(vim)
    vim.input("q")
    wait_for(lambda: vim.funcs.reg_recording() == "" and "return" in vim.funcs.getreg("q"), what="the recording")
    vim.input("gg@q")
    once = FUNCTION + "\n\treturn"
    wait_for(lambda: buffer_text(vim) == "x\n" + once + "\n" + once, what="the replay, as exact")


def test_a_block_append_with_an_accept_is_on_every_line_and_undoes_in_one_step(vim, model):
    vim.current.buffer[:] = ["a", "b", "c"]
    expected = suggest(model, "a the qu")
    assert expected and "\n" not in expected, expected
    vim.input("gg<C-v>jj$A the qu")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected, what=f"ghost text {expected!r}")
    vim.input("<Tab>")
    wait_for(lambda: vim.current.buffer[0] == "a the qu" + expected, what="the accepted text")
    escape(vim)
    wait_for(lambda: vim.current.buffer[:] == [f"{c} the qu{expected}" for c in "abc"], what="the block append")
    vim.input("u")
    wait_for(lambda: vim.current.buffer[:] == ["a", "b", "c"], what="one undo for the whole block append")


def test_accepting_never_shows_the_accepted_text_twice(vim, model):
    lua(vim, "require('textgen').setup({ auto_trigger = false })")     # nothing new comes after the accept
    screen = Screen(vim)
    try:
        expected = suggest(model, "x\nthe qu")
        vim.input("othe qu")
        wait_for(lambda: buffer_text(vim) == "x\nthe qu", what="the typed text")
        vim.input("<Cmd>TextGenComplete<CR>")
        wait_for(lambda: ghost(vim) and screen.row(1) == "the qu" + expected, what="the ghost text on screen")
        seen = len(screen.frames)
        vim.input("<Tab>Z")
        wait_for(lambda: screen.row(1) == "the qu" + expected + "Z", what="the accept and a Z on screen")
        rows = [frame[1].rstrip() for frame in screen.frames[seen:-1]]
        assert set(rows) <= {"the qu" + expected}, rows
    finally:
        screen.close()


def test_replace_mode_shows_no_suggestion_so_backspace_puts_back_what_it_replaced(vim, model):
    """In Replace mode typed text overwrites; an accepted suggestion would be inserted, and <BS> would
    then put back characters that Replace mode never took (`def __init__(self, x=xxx`, a new user's
    trial). No suggestion shows there: <Insert> from Insert mode takes the ghost text away, typing asks
    for none, <Tab> is a key as without the plugin, and :TextGenComplete says why."""
    expected = suggest(model, "x\nthe qu")
    vim.current.buffer[:] = ["x", "the qu"]
    vim.command("setlocal noexpandtab")
    vim.input("Gi")
    wait_for(lambda: mode(vim) == "i", what="insert mode")
    vim.input("<End>")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected, what=f"ghost text {expected!r}")
    vim.input("<Insert>")
    wait_for(lambda: mode(vim) == "R", what="Replace mode")
    wait_for(lambda: ghost(vim) is None, what="the ghost text gone in Replace mode")
    asked = requests(vim)
    vim.input("<BS><BS>ick")            # Replace mode: <BS> moves back, then the letters overwrite
    wait_for(lambda: vim.current.buffer[-1] == "the ick", what="the typed letters")
    assert requests(vim) == asked and ghost(vim) is None
    vim.input("<Tab><BS><BS><BS><BS>")  # a Tab typed as a Tab, and <BS> restores what was replaced
    wait_for(lambda: vim.current.buffer[-1] == "the qu", what="the line as it was before Replace mode")
    vim.input("<C-o>:TextGenComplete<CR>")
    wait_for(lambda: "no suggestions here: not in Replace mode" in messages(vim), what="why not")
    assert requests(vim) == asked and ghost(vim) is None
    vim.input("<Insert><End>ick")       # back in Insert mode (<BS> left the cursor before "qu")
    wait_for(lambda: mode(vim) == "i" and vim.current.buffer[-1] == "the quick" and ghost(vim) is not None,
             what="a suggestion in Insert mode")
    escape(vim)
