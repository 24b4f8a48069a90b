"""End to end: moving the cursor without typing (arrows, a mouse click) takes the ghost text away, or
asks again at the new place; it never leaves it where the cursor was. Terminal buffers never get any.

One Neovim serves the whole module; each test starts from a fresh buffer and the base options
(the fixture pattern of test_plugin_ghost_text.py).
"""
from __future__ import annotations

import pytest

from tests.nvim_harness import (
    buffer_text,
    cursor,
    fresh_buffer,
    ghost,
    idle,
    lua,
    mode,
    requests,
    suggest,
    type_and_wait,
    wait_for,
)


@pytest.fixture
def vim(nvim, tiny_model_dir):
    """The module's Neovim in normal mode with one empty buffer and the base options; every
    CursorMovedI records the ghost text's extmarks as textgen left them (`marks_at_moves`)."""
    fresh_buffer(nvim, tiny_model_dir)
    lua(nvim, """
        _G.marks_at_moves = {}
        local ns = vim.api.nvim_create_namespace('textgen')
        -- defined after setup()'s autocommands, so it runs after textgen's CursorMovedI handler
        vim.api.nvim_create_autocmd('CursorMovedI', {
            group = vim.api.nvim_create_augroup('textgen_test_cursor', { clear = true }),
            callback = function()
                local cur = vim.api.nvim_win_get_cursor(0)
                table.insert(_G.marks_at_moves, { cursor = { cur[1] - 1, cur[2] },
                    marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, {}) })
            end,
        })
    """)
    wait_for(lambda: idle(nvim), what="textgen to be idle")
    return nvim


def marks_left_at_moves(nvim, row: int, col: int) -> list:
    """The cursor moves after which an extmark of textgen still sat at (row, col)."""
    moves = lua(nvim, "return _G.marks_at_moves")
    return [move for move in moves if any((mark[1], mark[2]) == (row, col) for mark in move["marks"])]


def test_left_takes_the_ghost_text_away(vim, tiny_model):
    expected = suggest(tiny_model, "the qu")
    shown = type_and_wait(vim, "ithe qu", expected)
    assert (shown.row, shown.col) == (0, 6)
    lua(vim, "_G.marks_at_moves = {}")
    vim.input("<Left>")
    wait_for(lambda: cursor(vim) == (1, 5) and idle(vim), what="the cursor one column left")
    assert lua(vim, "return #_G.marks_at_moves") >= 1, "no CursorMovedI was seen"
    assert marks_left_at_moves(vim, 0, 6) == []
    assert ghost(vim) is None                         # "u" after the cursor: mid_line "closing" shows none
    assert buffer_text(vim) == "the qu" and mode(vim) == "i"


def test_arrows_ask_again_at_the_new_place_and_never_leave_the_old_ghost(vim, tiny_model):
    lua(vim, "require('textgen').setup({ mid_line = 'always' })")
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    lua(vim, "_G.marks_at_moves = {}")
    asked = requests(vim)
    vim.input("<Left>")
    wait_for(lambda: cursor(vim) == (1, 5) and idle(vim), what="the cursor one column left")
    assert marks_left_at_moves(vim, 0, 6) == []
    moved = ghost(vim)
    assert moved is None or (moved.row, moved.col) == (0, 5)
    assert requests(vim) > asked                      # asked again at the new place
    lua(vim, "_G.marks_at_moves = {}")
    vim.input("<Right>")                              # back to the end of the line
    shown = wait_for(lambda: (g := ghost(vim)) and g.col == 6 and g.text == expected and g,
                     what="the suggestion asked again at the end of the line")
    assert shown.row == 0 and cursor(vim) == (1, 6)
    assert marks_left_at_moves(vim, 0, 5) == []


def test_a_cursor_set_in_insert_mode_like_a_mouse_click_takes_the_ghost_text_away(vim, tiny_model):
    vim.current.buffer[:] = ["the cat sat on the mat.", ""]
    vim.current.window.cursor = (2, 0)
    expected = suggest(tiny_model, "the cat sat on the mat.\nthe qu")
    shown = type_and_wait(vim, "ithe qu", expected)
    assert (shown.row, shown.col) == (1, 6)
    lua(vim, "_G.marks_at_moves = {}")
    vim.api.win_set_cursor(0, (1, 3))                 # what a click does: the cursor jumps, in insert mode
    wait_for(lambda: lua(vim, "return #_G.marks_at_moves") >= 1 and idle(vim), what="the cursor move")
    assert mode(vim) == "i" and cursor(vim) == (1, 3)
    assert marks_left_at_moves(vim, 1, 6) == []
    assert ghost(vim) is None                         # mid-line before a word: nothing shows


def test_typing_in_a_terminal_buffer_shows_nothing_and_asks_nothing(vim):
    """A real :terminal in terminal mode, typed into: no request, no extmark, ever."""
    lua(vim, "_G.terminal_marks = 0")
    shown, asked = lua(vim, "return require('textgen.suggestion').stats.shown"), requests(vim)
    vim.command("terminal sh")
    try:
        buf = vim.current.buffer.number
        lua(vim, """
            local buf, ns = ..., vim.api.nvim_create_namespace('textgen')
            vim.api.nvim_create_autocmd({ 'TextChangedT', 'TextChanged', 'CursorMoved' }, {
                group = vim.api.nvim_create_augroup('textgen_test_terminal', { clear = true }),
                buffer = buf,
                callback = function()
                    _G.terminal_marks = _G.terminal_marks + #vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, {})
                end,
            })
        """, buf)
        vim.input("i")
        wait_for(lambda: mode(vim) == "t", what="terminal mode")
        vim.input("echo the quick brown fox")
        wait_for(lambda: any("echo the quick brown fox" in line for line in vim.current.buffer[:]),
                 what="the typed text in the terminal")
        vim.input("<CR>")
        wait_for(lambda: sum("the quick brown fox" in line for line in vim.current.buffer[:]) >= 2,
                 what="the shell's answer")
        wait_for(lambda: idle(vim), what="textgen to be idle")
        ns = vim.api.create_namespace("textgen")
        assert vim.api.buf_get_extmarks(buf, ns, 0, -1, {}) == []
        assert lua(vim, "return _G.terminal_marks") == 0
        assert requests(vim) == asked
        assert lua(vim, "return require('textgen.suggestion').stats.shown") == shown
    finally:
        vim.input("<C-\\><C-n>")
        wait_for(lambda: mode(vim).startswith("n"), what="normal mode")
        vim.command("silent! augroup textgen_test_terminal | autocmd! | augroup END")
        vim.command("bwipeout!")
