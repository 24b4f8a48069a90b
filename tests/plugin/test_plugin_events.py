"""End to end: what textgen offers other plugins, in a real Neovim typed into with nvim_input, from a
real tiny model: the User autocommands TextGenSuggestion, TextGenAccept and TextGenTrainDone (after a
real :TextGenTrain), the `g:textgen.enabled` hook, and require('textgen').status() as a statusline
(lualine) component before the Python host is up.

One Neovim serves the module; each test starts from a fresh buffer and the base options. Events are
recorded by a Lua autocommand of the test into `_G.events`, with what the handler saw of textgen
then (the buffer line, whether a suggestion is visible, the ghost text on screen).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.nvim_harness import (
    REPO,
    base_config,
    buffer_text,
    fresh_buffer,
    ghost,
    host_pid,
    idle,
    lua,
    messages,
    mode,
    not_at_a_prompt,
    requests,
    set_options,
    shared_manifest,
    start_nvim,
    suggest,
    type_and_wait,
    wait_for,
)
from textgen_core.decode import DecodeOptions
from textgen_core.serve.engine import fresh_completion

from .test_plugin_train import NOVEL, SHORTEST, SLOW

RECORD = """
_G.events = {}
local group = vim.api.nvim_create_augroup("test_textgen_events", { clear = true })
vim.api.nvim_create_autocmd("User", {
  group = group,
  pattern = { "TextGenSuggestion", "TextGenAccept", "TextGenTrainDone" },
  callback = function(ev)
    local ns = vim.api.nvim_create_namespace("textgen")
    local shown = {}
    for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })) do
      for _, chunk in ipairs(mark[4].virt_text or {}) do
        shown[#shown + 1] = chunk[1]
      end
    end
    table.insert(_G.events, {
      event = ev.match,
      data = ev.data,
      line = vim.api.nvim_get_current_line(),
      visible = require("textgen").is_visible(),
      ghost = table.concat(shown),
      model = require("textgen.config").get().model,
      training = require("textgen").status().training.state,
    })
  end,
})
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nvim-home")


@pytest.fixture(scope="module")
def nvim(tiny_model_dir, home):
    editor = start_nvim(shared_manifest(), home, base_config(tiny_model_dir), columns=200)
    yield editor
    editor.close()


@pytest.fixture
def vim(nvim, tiny_model_dir):
    """The module's Neovim in normal mode, one empty buffer, the base options, no messages, and the
    events recorder."""
    fresh_buffer(nvim, tiny_model_dir)
    nvim.command("messages clear")
    lua(nvim, RECORD)
    wait_for(lambda: idle(nvim), what="textgen to be idle")
    return nvim


def events(nvim, name: str) -> list[dict]:
    not_at_a_prompt(nvim)
    return [e for e in lua(nvim, "return _G.events") if e["event"] == name]


def wait_for_events(nvim, name: str, count: int, timeout: float = 30) -> list[dict]:
    return wait_for(lambda: len(found := events(nvim, name)) >= count and found, timeout=timeout,
                    what=f"{count} {name} event(s)")


def current_buffer(nvim) -> int:
    return nvim.current.buffer.number


# -- TextGenSuggestion --------------------------------------------------------------------------------

def test_a_suggestion_shown_while_typing_is_announced_once_not_per_character_typed_through_it(vim, tiny_model):
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    wait_for(lambda: idle(vim), what="the request to finish")
    last = wait_for(lambda: (e := events(vim, "TextGenSuggestion")) and e[-1]["data"]["text"] == expected and e[-1],
                    what="TextGenSuggestion with the ghost text")
    assert last["data"] == {"buf": current_buffer(vim), "text": expected, "index": 1, "count": 1,
                            "row": 0, "col": len("the qu")}
    assert last["ghost"] == expected and last["visible"], "announced before it was on screen"
    announced = len(events(vim, "TextGenSuggestion"))

    vim.input(expected[:3])
    wait_for(lambda: (g := ghost(vim)) and g.text == expected[3:] and idle(vim), what="the shrunk ghost text")
    assert len(events(vim, "TextGenSuggestion")) == announced, events(vim, "TextGenSuggestion")[announced:]


def test_a_suggestion_is_announced_whole_not_each_part_as_it_streams_in(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    expected = suggest(tiny_model, "the qu")
    vim.input("ithe qu")
    wait_for(lambda: buffer_text(vim) == "the qu")
    type_and_wait(vim, "<Cmd>TextGenComplete<CR>", expected)
    wait_for(lambda: idle(vim), what="the request to finish")
    assert [e["data"]["text"] for e in wait_for_events(vim, "TextGenSuggestion", 1)] == [expected]


def test_cycling_announces_each_alternative_shown(vim, tiny_model):
    set_options(vim, auto_trigger=False)
    alternatives = [text.rstrip() for text in fresh_completion(tiny_model, "the ", DecodeOptions(n=3))]
    assert len(set(alternatives)) == len(alternatives) >= 2, alternatives
    n = len(alternatives)
    vim.input("ithe ")
    wait_for(lambda: buffer_text(vim) == "the ")
    type_and_wait(vim, "<Cmd>TextGenComplete!<CR>", alternatives[0])
    type_and_wait(vim, "<M-]>", alternatives[1])
    type_and_wait(vim, "<M-[>", alternatives[0])
    type_and_wait(vim, "<M-[>", alternatives[-1])
    shown = wait_for_events(vim, "TextGenSuggestion", 4)
    assert [(e["data"]["text"], e["data"]["index"], e["data"]["count"]) for e in shown] == [
        (alternatives[0], 1, n), (alternatives[1], 2, n), (alternatives[0], 1, n), (alternatives[-1], n, n)]
    assert [e["ghost"] for e in shown] == [e["data"]["text"] for e in shown]


# -- TextGenAccept ------------------------------------------------------------------------------------

def test_tab_announces_the_accepted_text_once_it_is_in_the_buffer(vim, tiny_model):
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    vim.input("<Tab>")
    accepted = wait_for_events(vim, "TextGenAccept", 1)
    assert [e["data"] for e in accepted] == [{"buf": current_buffer(vim), "text": expected, "how": "all"}]
    assert accepted[0]["line"] == "the qu" + expected and not accepted[0]["visible"]
    assert buffer_text(vim) == "the qu" + expected


def test_accepting_a_word_then_a_line_announces_exactly_what_each_inserted(vim, tiny_model):
    expected = suggest(tiny_model, "the qu")
    type_and_wait(vim, "ithe qu", expected)
    vim.input("<M-Right>")
    word = wait_for_events(vim, "TextGenAccept", 1)[0]
    assert word["data"]["how"] == "word" and 0 < len(word["data"]["text"]) < len(expected), word
    assert expected.startswith(word["data"]["text"])
    wait_for(lambda: buffer_text(vim) == "the qu" + word["data"]["text"], what="the word in the buffer")
    assert word["line"] == "the qu" + word["data"]["text"]
    assert word["visible"] and word["ghost"] == expected[len(word["data"]["text"]):]

    vim.input("<M-Down>")
    line = wait_for_events(vim, "TextGenAccept", 2)[1]
    assert line["data"] == {"buf": current_buffer(vim), "text": expected[len(word["data"]["text"]):], "how": "line"}
    assert line["line"] == buffer_text(vim) == "the qu" + expected and not line["visible"]


def test_an_error_in_a_listener_leaves_suggestions_working(vim, tiny_model):
    """Neovim reports the listener's error itself; textgen's state was updated before it fired, and
    the next suggestion comes as usual. (A traceback would stop Neovim at "Press ENTER", where
    this test's API calls would wait: 'messagesopt' without hit-enter shows it and goes on.)"""
    vim.command("set messagesopt=wait:0,history:500")
    lua(vim, """
        vim.api.nvim_create_autocmd("User", {
          group = vim.api.nvim_create_augroup("test_textgen_broken_listener", { clear = true }),
          pattern = { "TextGenSuggestion", "TextGenAccept" },
          callback = function() error("listener broke") end,
        })
    """)
    try:
        expected = suggest(tiny_model, "the qu")
        type_and_wait(vim, "ithe qu", expected)
        wait_for(lambda: "listener broke" in messages(vim), what="Neovim's report of the listener's error")
        vim.input("<Tab>")
        wait_for(lambda: buffer_text(vim) == "the qu" + expected, what="the accepted text")
        accepted = wait_for_events(vim, "TextGenAccept", 1)                 # the other listener ran
        assert [e["data"]["how"] for e in accepted] == ["all"] and not accepted[0]["visible"]
        assert messages(vim).count("listener broke") >= 2
        then = suggest(tiny_model, "the qu" + expected + "\nthe ca")
        assert then
        type_and_wait(vim, "<CR>the ca", then)
        assert mode(vim) == "i"
    finally:
        lua(vim, "vim.api.nvim_del_augroup_by_name('test_textgen_broken_listener')")
        vim.command("set messagesopt&")


# -- g:textgen.enabled --------------------------------------------------------------------------------

ASKING_HOOK = """
_G.asked, _G.allow = {}, false
require("textgen").setup({
  enabled = function(buf)
    table.insert(_G.asked, buf)
    return _G.allow
  end,
})
"""


def test_an_enabled_hook_is_asked_with_the_buffer_and_false_keeps_suggestions_away(vim, tiny_model):
    lua(vim, ASKING_HOOK)
    asked_before = requests(vim)
    buf = current_buffer(vim)
    vim.input("ithe qu")
    wait_for(lambda: buffer_text(vim) == "the qu" and lua(vim, "return #_G.asked") > 0 and idle(vim),
             what="the hook asked about the typing")
    assert set(lua(vim, "return _G.asked")) == {buf}
    assert ghost(vim) is None and requests(vim) == asked_before

    vim.command("TextGenComplete")
    wait_for(lambda: "no suggestions here: g:textgen.enabled returned false for this buffer" in messages(vim),
             what=":TextGenComplete saying why")
    assert ghost(vim) is None and requests(vim) == asked_before
    status = lua(vim, "return require('textgen').status()")
    assert status["enabled"] is False
    assert status["disabled_reason"] == "g:textgen.enabled returned false for this buffer"

    lua(vim, "_G.allow = true")
    expected = suggest(tiny_model, "the qui")
    type_and_wait(vim, "i", expected)


def test_enabled_false_keeps_suggestions_away_and_true_brings_them_back(vim, tiny_model):
    set_options(vim, enabled=False)
    asked_before = requests(vim)
    vim.input("ithe qu")
    wait_for(lambda: buffer_text(vim) == "the qu" and idle(vim))
    assert ghost(vim) is None and requests(vim) == asked_before
    assert lua(vim, "return require('textgen').status().disabled_reason") == "g:textgen.enabled is false"
    set_options(vim, enabled=True)
    type_and_wait(vim, "i", suggest(tiny_model, "the qui"))


def test_a_throwing_enabled_hook_is_reported_once_in_one_line_and_keeps_suggestions_away(vim, tiny_model):
    lua(vim, """require("textgen").setup({ enabled = function() error("hook broke") end })""")
    asked_before = requests(vim)
    vim.input("i")
    typed = ""
    for char in "the qu":
        typed += char
        vim.input(char)
        wait_for(lambda typed=typed: buffer_text(vim) == typed and idle(vim), what=f"{typed!r} typed")
    said = wait_for(lambda: "g:textgen.enabled failed" in (m := messages(vim)) and m, what="the report")
    assert ghost(vim) is None and requests(vim) == asked_before
    lines = [line for line in said.splitlines() if line.strip()]
    assert len(lines) == 1, said
    assert re.fullmatch(r"textgen: g:textgen\.enabled failed \(.*hook broke\); no suggestions where it fails", lines[0])
    assert "Error" not in said
    status = "\n".join(lua(vim, "return require('textgen').status_lines()"))
    assert "this buffer: off, g:textgen.enabled failed: " in status and "hook broke" in status

    lua(vim, """require("textgen").setup({ enabled = function() return true end })""")
    type_and_wait(vim, "i", suggest(tiny_model, "the qui"))
    assert messages(vim) == said


def test_next_in_a_buffer_the_hook_turns_off_asks_for_nothing(vim):
    lua(vim, ASKING_HOOK)
    asked_before = requests(vim)
    vim.input("ithe <M-]>")
    wait_for(lambda: "no suggestions here: g:textgen.enabled returned false" in messages(vim), what="why not")
    assert ghost(vim) is None and requests(vim) == asked_before


# -- status() as a statusline (lualine) component ---------------------------------------------------

def lualine_snippet() -> str:
    """The lualine set-up the help gives under *textgen-lualine*."""
    help_text = (REPO / "doc" / "textgen.txt").read_text()
    section = help_text.split("*textgen-lualine*", 1)[1]
    return re.search(r">lua\n(.*?)\n<", section, re.DOTALL).group(1)


def host_running(nvim) -> bool:
    """Whether textgen has started its Python host (at once: the job starts with the call that asks)."""
    return lua(nvim, "return require('textgen.host').running()") or host_pid(nvim) is not None


def test_the_lualine_component_of_the_help_works_before_the_host_is_up(tiny_model_dir, tmp_path):
    """lualine is not installed here: a stand-in `lualine` module keeps what the help's snippet gives
    its setup(), and the test calls the component and its cond as lualine would, on every redraw."""
    editor = start_nvim(shared_manifest(), tmp_path / "home", {**base_config(tiny_model_dir), "auto_trigger": False})
    try:
        lua(editor, "package.loaded.lualine = { setup = function(opts) _G.lualine_opts = opts end }")
        lua(editor, lualine_snippet())
        component = """
            local c = _G.lualine_opts.sections.lualine_x[1]
            return { (c.cond == nil or c.cond()) and true or false, c[1]() }
        """
        shown, text = lua(editor, component)
        assert shown is True and text == ""           # nothing loaded yet: nothing to show
        assert not host_running(editor), "the statusline started the Python host"
        lua(editor, """require("textgen").setup({ enabled = function() error("hook broke") end })""")
        assert lua(editor, component)[1] == ""        # a throwing hook does not break the statusline
        assert not host_running(editor)
        lua(editor, """require("textgen").setup({ enabled = true, auto_trigger = true })""")
        editor.input("ithe")
        wait_for(lambda: lua(editor, component) == [True, "tiny"], what="the model's name in the statusline")
    finally:
        editor.close()


# -- TextGenTrainDone ---------------------------------------------------------------------------------

def open_novel(nvim) -> None:
    nvim.command("enew")
    nvim.current.buffer[:] = NOVEL.splitlines()


def test_a_finished_training_is_announced_with_the_model_it_saved(vim, home):
    set_options(vim, **SHORTEST, train_minutes=1)
    open_novel(vim)
    vim.command("TextGenTrain event-novel")
    done = wait_for_events(vim, "TextGenTrainDone", 1, timeout=120)
    path = home / "models" / "event-novel"
    assert len(done) == 1, done
    data = done[0]["data"]
    assert data["ok"] is True and data["model"] == "event-novel" and data["path"] == str(path), data
    assert "reason" not in data
    assert isinstance(data["val_bpc"], float) and isinstance(data["seconds"], (int, float))
    assert (path / "config.json").exists() and (path / "weights.npz").exists()
    # Announced once textgen is up to date: the training is over and requests name the new model.
    assert done[0]["training"] == "done" and done[0]["model"] == str(path)


def test_a_cancelled_training_is_announced_with_why(vim, home):
    set_options(vim, **SLOW)
    open_novel(vim)
    vim.command("TextGenTrain cancelled-event-novel")
    wait_for(lambda: lua(vim, "return require('textgen').status().training.state") == "running",
             what="training to start")
    vim.command("TextGenTrainStop")
    done = wait_for_events(vim, "TextGenTrainDone", 1, timeout=30)
    data = done[0]["data"]
    assert data["ok"] is False and data["reason"] == "cancelled" and "model" not in data, data
    assert "nothing saved" in data["message"]
    assert done[0]["training"] == "cancelled"
    assert not (home / "models" / "cancelled-event-novel").exists()
