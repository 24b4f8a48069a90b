"""End to end: textgen's sources for nvim-cmp and blink.cmp, called as those menus call them, in a real
Neovim with the real plugin, its Python host and a real tiny model.

Neither menu plugin can be installed here (no downloads), so the tests build the `params` / `ctx`
tables as nvim-cmp (cmp.context.new, cmp.source.complete) and blink.cmp (blink.cmp.completion.trigger
.context.new) build them, call the source, record what it calls back in a Lua global, and apply an
item's textEdit with vim.lsp.util.apply_text_edits, as both menus do.
"""
from __future__ import annotations

import pytest

from tests.nvim_harness import (
    buffer_text,
    fresh_buffer,
    ghost,
    idle,
    lua,
    mode,
    requests,
    set_options,
    shared_manifest,
    start_nvim,
    wait_for,
)
from textgen_core.decode import DecodeOptions
from textgen_core.serve.engine import fresh_completion

# Globals for the tests: the params/ctx a menu would pass, and every response its callback got.
MENU_HELPERS = r"""
_G.menu_answers = {}
_G.menu_test = {}

--- What a source's callback gets, kept in order (with a tag naming the request).
function menu_test.recorder(tag)
  return function(response)
    table.insert(_G.menu_answers, { tag = tag, response = response or vim.NIL })
  end
end

--- nvim-cmp's params for source:complete (cmp.context.new, and the offset cmp.context:get_offset finds
--- with cmp's default keyword pattern at the end of the text before the cursor).
function menu_test.cmp_params()
  local cursor = vim.api.nvim_win_get_cursor(0)
  local line = vim.api.nvim_get_current_line()
  local col = cursor[2] + 1
  local before = line:sub(1, col - 1)
  local keyword = [[\%(-\?\d\+\%(\.\d\+\)\?\|\h\w*\%(-\w*\)*\)]]
  local s = vim.regex([[\%(]] .. keyword .. [[\)\m$]]):match_str(before)
  local context = {
    id = "1",
    bufnr = vim.api.nvim_get_current_buf(),
    filetype = vim.bo.filetype,
    time = vim.uv.now(),
    option = { reason = "auto" },
    cursor = { row = cursor[1], col = col, line = cursor[1] - 1, character = vim.fn.strchars(before) },
    cursor_line = line,
    cursor_before_line = before,
    cursor_after_line = line:sub(col),
    aborted = false,
  }
  return { offset = s and s + 1 or col, context = context, completion_context = { triggerKind = 1 } }
end

--- blink.cmp's ctx for source:get_completions (context.new: bounds are the keyword around the cursor,
--- start_col 1-based).
function menu_test.blink_ctx()
  local cursor = vim.api.nvim_win_get_cursor(0)
  local line = vim.api.nvim_get_current_line()
  local before, after = line:sub(1, cursor[2]), line:sub(cursor[2] + 1)
  local s = vim.regex([[\k*$]]):match_str(before) or #before
  local _, e = vim.regex([[^\k*]]):match_str(after)
  return {
    mode = "default",
    id = 1,
    bufnr = vim.api.nvim_get_current_buf(),
    cursor = cursor,
    line = line,
    bounds = { line_number = cursor[1], start_col = s + 1, length = #before - s + (e or 0) },
    trigger = { initial_kind = "keyword", kind = "keyword" },
    providers = { "textgen" },
    timestamp = vim.uv.now(),
  }
end

function menu_test.cmp_complete(tag)
  local source = require("textgen.cmp").new()
  source:complete(menu_test.cmp_params(), menu_test.recorder(tag or "cmp"))
end

function menu_test.blink_complete(tag)
  local source = require("textgen.blink").new({}, { name = "textgen", module = "textgen.blink" })
  return source:get_completions(menu_test.blink_ctx(), menu_test.recorder(tag or "blink"))
end

--- Accept an item as the menus do: its textEdit, through Neovim's LSP client, its columns read in the
--- encoding the source names (nvim-cmp asks source:get_position_encoding_kind(); blink.cmp takes
--- utf-8 from a source that is no language server).
function menu_test.apply(item, encoding)
  vim.lsp.util.apply_text_edits({ item.textEdit }, vim.api.nvim_get_current_buf(), encoding or "utf-8")
end
"""


@pytest.fixture
def vim(nvim, tiny_model_dir):
    """The module's Neovim in normal mode with one empty buffer, the base options and the helpers."""
    fresh_buffer(nvim, tiny_model_dir)
    wait_for(lambda: idle(nvim), what="textgen to be idle")
    lua(nvim, MENU_HELPERS)
    return nvim


def alternatives(tiny_model, context: str, n: int = 3, **options) -> list[str]:
    """What the plugin offers after `context`: the engine's n alternatives, without the blanks at their
    end and without repeats (as suggestion.lua keeps them)."""
    texts = []
    for text in fresh_completion(tiny_model, context, DecodeOptions(n=n, **options)):
        text = text.rstrip()
        if text and text not in texts:
            texts.append(text)
    return texts


def answers(nvim) -> list[dict]:
    return lua(nvim, "return _G.menu_answers")


def wait_answer(nvim, count: int = 1) -> list[dict]:
    return wait_for(lambda: (a := answers(nvim)) and len(a) >= count and a, what=f"{count} menu answer(s)")


def items_of(answer: dict) -> list[dict]:
    return answer["response"]["items"]


def inserted(items: list[dict], keyword: str) -> list[str]:
    """What each item inserts at the cursor (its textEdit replaces the word before it)."""
    assert all(item["textEdit"]["newText"].startswith(keyword) for item in items)
    return [item["textEdit"]["newText"][len(keyword):] for item in items]


def type_text(nvim, keys: str, text: str) -> None:
    nvim.input(keys)
    wait_for(lambda: buffer_text(nvim) == text and idle(nvim), what=f"{text!r} typed")


# -- nvim-cmp ----------------------------------------------------------------------------------------

def test_cmp_offers_the_suggestion_shown_without_asking_again(vim, tiny_model):
    expected = alternatives(tiny_model, "the qu", n=1)[0]
    vim.input("ithe qu")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected, what="the ghost text")
    wait_for(lambda: idle(vim))
    asked = requests(vim)
    lua(vim, "menu_test.cmp_complete()")
    answer = wait_answer(vim)[0]
    assert answer["response"]["isIncomplete"] is True          # cmp asks again as the user types
    items = items_of(answer)
    assert inserted(items, "qu") == [expected]
    item = items[0]
    assert item["filterText"] == "qu" + expected.split("\n")[0]      # cmp filters by the word typed
    assert item["label"].startswith("qu") and len(item["label"]) <= 40
    assert item["insertTextFormat"] == 1 and item["kind"] == 1       # plain text, not a snippet
    assert item["textEdit"]["range"] == {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 6}}
    assert "the qu" + expected in item["documentation"]["value"]
    assert item["documentation"]["kind"] == "markdown"
    assert requests(vim) == asked


def test_cmp_asks_for_alternatives_when_nothing_is_shown_and_draws_no_ghost_text(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    expected = alternatives(tiny_model, "the q")
    assert len(expected) >= 2, expected
    type_text(vim, "ithe q", "the q")
    asked = requests(vim)
    lua(vim, "menu_test.cmp_complete()")
    assert answers(vim) == []                                   # asked, not waited for
    items = items_of(wait_answer(vim)[0])
    assert inserted(items, "q") == expected
    assert [item["sortText"] for item in items] == sorted(item["sortText"] for item in items)
    assert requests(vim) == asked + 1
    wait_for(lambda: idle(vim))
    assert ghost(vim) is None
    # The same as :TextGenComplete! offers to cycle through at this cursor.
    vim.input("<Cmd>TextGenComplete!<CR>")
    wait_for(lambda: ghost(vim) is not None and idle(vim), what=":TextGenComplete!'s ghost text")
    assert lua(vim, "return require('textgen.suggestion').get().items") == expected


def test_applying_a_cmp_item_inserts_the_whole_suggestion_at_the_cursor(vim, tiny_model):
    set_options(vim, auto_trigger=False, alternatives=2)
    type_text(vim, "ithe q", "the q")
    lua(vim, "menu_test.cmp_complete()")
    items = items_of(wait_answer(vim)[0])
    second = inserted(items, "q")[1]
    lua(vim, "menu_test.apply(...)", items[1])
    assert buffer_text(vim) == "the q" + second


def test_a_multi_line_suggestion_is_one_item_that_inserts_all_its_lines(vim, tiny_model):
    set_options(vim, auto_trigger=False, multiline=True, alternatives=1)
    context = "def greet(name):"
    expected = alternatives(tiny_model, context, n=1, stop_at_newline=False)[0]
    assert "\n" in expected.strip("\n"), expected
    type_text(vim, "i" + context, context)
    lua(vim, "menu_test.cmp_complete()")
    (item,) = items_of(wait_answer(vim)[0])
    assert item["textEdit"]["newText"] == expected                  # no word before the cursor: ':'
    assert "\n" not in item["label"] and item["label"].endswith("…")
    assert f"```\n{context}{expected}\n```" in item["documentation"]["value"]
    lua(vim, "menu_test.apply(...)", item)
    assert buffer_text(vim) == context + expected


def test_documentation_is_a_code_block_in_the_buffers_filetype_and_columns_are_bytes(vim, tiny_model):
    set_options(vim, auto_trigger=False, alternatives=1)
    vim.command("setfiletype python")
    expected = alternatives(tiny_model, "naïve the c", n=1)[0]
    assert any(ord(char) > 127 for char in expected), expected
    type_text(vim, "inaïve the c", "naïve the c")
    lua(vim, "menu_test.cmp_complete()")
    (item,) = items_of(wait_answer(vim)[0])
    assert item["documentation"]["value"] == f"```python\nnaïve the c{expected}\n```"
    start = len("naïve the ".encode())
    assert item["textEdit"]["range"]["start"] == {"line": 0, "character": start}
    lua(vim, "menu_test.apply(..., require('textgen.cmp').new():get_position_encoding_kind())", item)
    assert buffer_text(vim) == "naïve the c" + expected


def test_a_stale_cmp_request_calls_back_with_no_items(vim):
    set_options(vim, auto_trigger=False)
    type_text(vim, "ithe qu", "the qu")
    # The buffer changes before the model can answer (the same Lua chunk): the answer is for text gone.
    lua(vim, "menu_test.cmp_complete(); vim.api.nvim_buf_set_text(0, 0, 0, 0, 0, { 'x' })")
    answer = wait_answer(vim)[0]
    assert items_of(answer) == []
    wait_for(lambda: idle(vim))
    assert len(answers(vim)) == 1 and ghost(vim) is None


def test_cmp_resolve_gives_the_item_with_its_documentation(vim):
    set_options(vim, auto_trigger=False)
    type_text(vim, "ithe qu", "the qu")
    lua(vim, "menu_test.cmp_complete()")
    item = items_of(wait_answer(vim)[0])[0]
    resolved = lua(vim, """
        local done
        require('textgen.cmp').new():resolve(..., function(item) done = item end)
        return done""", item)
    assert resolved == item and resolved["documentation"]["value"]


# -- blink.cmp -----------------------------------------------------------------------------------------

def test_blink_offers_the_same_items_as_cmp(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    expected = alternatives(tiny_model, "the q")
    type_text(vim, "ithe q", "the q")
    lua(vim, "menu_test.blink_complete()")
    answer = wait_answer(vim)[0]
    response = answer["response"]
    assert response["is_incomplete_forward"] is True and response["is_incomplete_backward"] is True
    assert inserted(response["items"], "q") == expected
    lua(vim, "menu_test.cmp_complete()")
    assert items_of(wait_answer(vim, 2)[1]) == response["items"]
    lua(vim, "menu_test.apply(...)", response["items"][0])
    assert buffer_text(vim) == "the q" + expected[0]
    assert mode(vim) == "i"


def test_a_newer_blink_request_drops_the_older_one(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    type_text(vim, "ithe qu", "the qu")
    # One Lua chunk, so that no answer can come in between: a request, a character typed, a request.
    lua(vim, """menu_test.blink_complete('old')
                vim.api.nvim_buf_set_text(0, 0, 6, 0, 6, { 'i' })
                vim.api.nvim_win_set_cursor(0, { 1, 7 })
                menu_test.blink_complete('new')""")
    assert buffer_text(vim) == "the qui"
    first, second = wait_answer(vim, 2)
    assert (first["tag"], first["response"]["items"]) == ("old", [])
    assert second["tag"] == "new"
    assert inserted(second["response"]["items"], "qui") == alternatives(tiny_model, "the qui")


def test_a_cancelled_blink_request_never_calls_back(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    type_text(vim, "ithe qu", "the qu")
    lua(vim, "menu_test.blink_complete()()")                   # get_completions, then its cancel
    assert idle(vim)                                            # nothing on its way
    # Whatever the host still had to say about it would have come before this answer.
    vim.input("<Cmd>TextGenComplete<CR>")
    wait_for(lambda: ghost(vim) is not None and idle(vim), what="the next suggestion")
    assert answers(vim) == []


def test_blink_resolve_gives_the_item_with_its_documentation(vim):
    set_options(vim, auto_trigger=False)
    type_text(vim, "ithe qu", "the qu")
    lua(vim, "menu_test.blink_complete()")
    item = items_of(wait_answer(vim)[0])[0]
    resolved = lua(vim, """
        local done
        require('textgen.blink').new({}, {}):resolve(..., function(item) done = item end)
        return done""", item)
    assert resolved == item and resolved["documentation"]["value"]


# -- the menus and the ghost text --------------------------------------------------------------------

def test_the_ghost_text_asked_for_at_the_same_place_shares_the_menus_request(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    expected = alternatives(tiny_model, "the q")
    type_text(vim, "ithe q", "the q")
    asked = requests(vim)
    lua(vim, "menu_test.blink_complete(); require('textgen').complete()")
    assert inserted(items_of(wait_answer(vim)[0]), "q") == expected
    wait_for(lambda: (g := ghost(vim)) and g.text == expected[0], what="the ghost text")
    assert requests(vim) == asked + 1


def test_a_menu_opening_does_not_drop_the_menus_own_request(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    type_text(vim, "ithe q", "the q")
    # blink.cmp opens its menu (with other sources' items) while textgen's answer is on its way; the
    # ghost text steps aside (trigger.lua), the menu's request stays.
    lua(vim, "menu_test.blink_complete(); vim.api.nvim_exec_autocmds('User', { pattern = 'BlinkCmpMenuOpen' })")
    assert inserted(items_of(wait_answer(vim)[0]), "q") == alternatives(tiny_model, "the q")
    wait_for(lambda: idle(vim))
    assert ghost(vim) is None


# -- where textgen is off -----------------------------------------------------------------------------

def test_the_sources_are_off_where_textgen_is(vim):
    assert lua(vim, "return require('textgen.cmp').new():is_available()") is True
    assert lua(vim, "return require('textgen.blink').new({}, {}):enabled()") is True
    set_options(vim, filetypes={"markdown": False})
    vim.command("setfiletype markdown")
    assert lua(vim, "return require('textgen.cmp').new():is_available()") is False
    assert lua(vim, "return require('textgen.blink').new({}, {}):enabled()") is False
    type_text(vim, "ithe qu", "the qu")
    asked = requests(vim)
    lua(vim, "menu_test.cmp_complete(); menu_test.blink_complete()")
    assert [items_of(a) for a in wait_answer(vim, 2)] == [[], []]     # answered at once, with nothing
    assert requests(vim) == asked


# -- registration with nvim-cmp ---------------------------------------------------------------------

def test_without_nvim_cmp_the_registration_does_nothing(vim):
    vim.command("let v:errmsg = ''")
    vim.input("i")
    wait_for(lambda: mode(vim) == "i")
    assert lua(vim, "return package.loaded.cmp == nil") is True      # nothing loaded it
    assert lua(vim, "return require('textgen.cmp').register()") is False
    assert vim.eval("v:errmsg") == ""


FAKE_CMP = """-- A minimal stand-in for nvim-cmp (the real one cannot be installed at test time: no downloads),
-- only to see textgen's own registration call register_source as nvim-cmp's sources do.
local cmp = { registered = {} }
function cmp.register_source(name, source)
  table.insert(cmp.registered, { name = name, source = source })
  return #cmp.registered
end
return cmp
"""


def test_nvim_cmp_gets_the_source_once_it_is_loaded_and_is_not_loaded_by_textgen(tiny_model_dir, tmp_path):
    # The stand-in installed as a start package, loaded only when the user's config asks for it (as a
    # lazily loaded nvim-cmp is): textgen registers its source then, without loading nvim-cmp itself.
    package = tmp_path / "home" / "xdg_data_home" / "nvim" / "site" / "pack" / "test" / "start" / "nvim-cmp"
    (package / "lua" / "cmp").mkdir(parents=True)
    (package / "lua" / "cmp" / "init.lua").write_text(FAKE_CMP)
    nvim = start_nvim(shared_manifest(), tmp_path / "home",
                      {"model": str(tiny_model_dir), "learn": False, "auto_trigger": False})
    try:
        wait_for(lambda: nvim.eval("v:vim_did_enter"), what="Neovim started")
        assert lua(nvim, "return vim.api.nvim_get_runtime_file('lua/cmp/init.lua', false)[1]") is not None
        nvim.input("i")
        wait_for(lambda: mode(nvim) == "i")
        assert lua(nvim, "return package.loaded.cmp == nil") is True      # textgen did not load it
        lua(nvim, "require('cmp')")                                        # the user's config does
        nvim.input("<Esc>i")                                               # registered when insert mode starts
        registered = wait_for(lambda: lua(nvim, "return #require('cmp').registered") >= 1 and lua(nvim, """
            local r = require('cmp').registered[1]
            return { name = r.name, debug_name = r.source:get_debug_name(),
                     complete = type(r.source.complete) == 'function' }"""), what="the registration")
        assert registered == {"name": "textgen", "debug_name": "textgen", "complete": True}
        nvim.input("<Esc>i")
        wait_for(lambda: mode(nvim) == "i")
        assert lua(nvim, "return #require('cmp').registered") == 1
        assert nvim.eval("v:errmsg") == ""
    finally:
        nvim.close()
