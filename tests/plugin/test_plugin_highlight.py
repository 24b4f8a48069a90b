"""The ghost text's colours, end to end: drawn in a 256-colour terminal grid ('termguicolors' off),
kept through colour schemes, and checked by :checkhealth textgen.

Neovim's default colour scheme colours Comment for 'termguicolors' only; a ghost text linked to it
was drawn in a terminal without 24-bit colour (tmux-256color, many SSH sessions) exactly like the
text typed before it.
"""
from __future__ import annotations

import pytest

from tests.nvim_harness import Screen, ghost, health_report, lua, mode, wait_for
from textgen_core.decode import DecodeOptions
from textgen_core.serve.engine import fresh_completion


@pytest.fixture
def vim(nvim):
    """The module's Neovim in normal mode, one empty buffer, the default colour scheme, no 24-bit colour."""
    nvim.input("<C-\\><C-n><Esc>")
    wait_for(lambda: mode(nvim).startswith("n"), what="normal mode")
    nvim.command("silent! %bwipeout!")
    nvim.command("set notermguicolors background=dark")
    nvim.command("colorscheme default")
    return nvim


def ghost_colour(vim, *, link: bool = False) -> dict:
    return vim.api.get_hl(0, {"name": "TextGenSuggestion", "link": link})


@pytest.mark.parametrize("background", ["dark", "light"])
def test_ghost_text_is_drawn_unlike_typed_text_in_a_256_colour_terminal(vim, tiny_model, background):
    vim.command(f"set background={background}")
    expected = fresh_completion(tiny_model, "the qu", DecodeOptions())[0].rstrip()
    screen = Screen(vim, lines=20, rgb=False)         # a terminal of 256 colours
    try:
        vim.input("ithe qu")
        wait_for(lambda: (g := ghost(vim)) and g.text == expected, what="the ghost text")
        wait_for(lambda: screen.row(0) == "the qu" + expected, what="the ghost text on the terminal grid")
        typed = {screen.foreground(0, col) for col in range(len("the qu"))}
        shown = {screen.foreground(0, col) for col in range(len("the qu"), len("the qu" + expected))}
        assert len(typed) == 1 and len(shown) == 1, (typed, shown)
        assert shown != typed, f"ghost text drawn in {shown}, typed text in {typed}"
    finally:
        screen.close()


def test_the_grey_comes_back_after_a_colour_scheme_clears_highlights(vim):
    vim.command("colorscheme vim")                       # :highlight clear, then its own groups
    assert ghost_colour(vim) == {"ctermfg": 244, "fg": 0x808080}


def test_a_colour_scheme_that_colours_the_ghost_text_wins(vim, tmp_path):
    (tmp_path / "colors").mkdir()
    (tmp_path / "colors" / "ghostly.vim").write_text(
        "highlight clear\nlet g:colors_name = 'ghostly'\nhighlight TextGenSuggestion ctermfg=33 guifg=#0000ff\n")
    vim.command(f"set runtimepath+={tmp_path}")
    vim.command("colorscheme ghostly")
    assert ghost_colour(vim) == {"ctermfg": 33, "fg": 0x0000FF}


def test_the_users_link_wins_and_stays_through_colorscheme_events(vim):
    vim.command("highlight link TextGenSuggestion Visual")
    assert ghost_colour(vim, link=True) == {"link": "Visual"}
    vim.command("doautocmd ColorScheme")                 # textgen defines its default again
    assert ghost_colour(vim, link=True) == {"link": "Visual"}


def test_checkhealth_says_the_ghost_text_is_drawn_unlike_typed_text(vim):
    assert "OK the ghost text (TextGenSuggestion) is drawn unlike typed text" in health_report(vim)


def test_checkhealth_warns_when_the_ghost_text_would_look_like_typed_text(vim):
    vim.command("highlight link TextGenSuggestion Normal")
    report = health_report(vim)
    assert ("WARNING the ghost text would look like typed text: TextGenSuggestion (linked to Normal) has the"
            " colours of Normal with 'termguicolors' off") in report, report
    assert ":highlight TextGenSuggestion ctermfg=244" in report, report
    lua(vim, "vim.o.termguicolors = true")
    vim.command("highlight link TextGenSuggestion Comment")
    assert "OK the ghost text (TextGenSuggestion) is drawn unlike typed text" in health_report(vim)
