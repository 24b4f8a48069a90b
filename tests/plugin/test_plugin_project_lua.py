"""Project memory, the editor's half (issue 24): g:textgen.project, what lua/textgen/memory.lua tells
the Python host about the open buffers and when, :TextGenProject and the memory lines of
:TextGenStatus, in a real Neovim with the plugin loaded as a user would load it.

What memory sends is recorded by wrapping `require('textgen.host').buffer` (the one call memory makes
to send): the wrapper forwards every message to the real host. A host without TextGenHostBuffer (one
older than project memory) is told nothing by host.lua; the wrapper then counts the message as
delivered, so that these tests check the Lua side's decisions whichever host runs.
"""
from __future__ import annotations

import pytest

from tests.nvim_harness import health_report, lua, messages, mode, not_at_a_prompt, wait_for

RECORD = """
local host = require('textgen.host')
host._original_buffer = host._original_buffer or host.buffer
host._calls = {}
host.buffer = function(info)
  table.insert(host._calls, { event = info.event, buf = info.buf, path = info.path,
    text_bytes = type(info.text) == 'string' and #info.text or vim.NIL, project = info.project })
  return host._original_buffer(info) or not host.keeps_memory()
end
"""


def calls(nvim, buf=None):
    """What memory sent (about buffer `buf`), leaving out the "unload" of the empty unnamed buffer that
    `:edit` reuses for the file (its number stays; the host forgets the empty text)."""
    found = lua(nvim, "return require('textgen.host')._calls")
    return [c for c in found if (buf is None or c["buf"] == buf) and not (c["event"] == "unload" and c["path"] is None)]


@pytest.fixture
def vim(nvim, tiny_model_dir):
    """The module's Neovim in normal mode with no buffer but an empty one, its host up, memory's
    messages recorded from here on, and a short quiet time for the debounce."""
    nvim.input("<C-\\><C-n><Esc>")
    wait_for(lambda: mode(nvim).startswith("n"), what="normal mode")
    nvim.command("silent! %bwipeout! | messages clear")
    lua(nvim, "vim.g.textgen = ...; require('textgen').setup({})", {"model": str(tiny_model_dir), "learn": False})
    wait_for(lambda: lua(nvim, "return require('textgen.host').model ~= nil"), what="the host to load the model")
    lua(nvim, RECORD)
    lua(nvim, "require('textgen.memory').QUIET_MS = 150")
    yield nvim
    lua(nvim, "require('textgen.memory').QUIET_MS = 1000")


def pending(nvim, buf) -> bool:
    """Whether a quiet-time send of `buf` waits."""
    return lua(nvim, "return require('textgen.memory').pending(...)", buf)


def edit(nvim, path, text):
    path.write_text(text)
    nvim.command(f"edit {path}")
    return nvim.current.buffer.number


# -- g:textgen.project -------------------------------------------------------------------------------

def validate(nvim, raw):
    return lua(nvim, "local c, p = require('textgen.config').validate(...); return { c.project, p }", raw)


def test_project_defaults_and_a_good_value(vim):
    assert validate(vim, {}) == [{"enabled": True, "max_mb": 32, "exclude": []}, []]
    good = {"project": {"enabled": 0, "max_mb": 512, "exclude": ["*.csv", "data/**"]}}
    assert validate(vim, good) == [{"enabled": False, "max_mb": 512, "exclude": ["*.csv", "data/**"]}, []]


def test_a_partial_project_keeps_the_other_defaults(vim):
    assert validate(vim, {"project": {"exclude": "*.log"}}) == [
        {"enabled": True, "max_mb": 32, "exclude": ["*.log"]}, []]
    assert validate(vim, {"project": {"max_mb": 8}}) == [{"enabled": True, "max_mb": 8, "exclude": []}, []]
    # setup() merges key by key too: a later setup({project = {max_mb = 4}}) keeps the exclude given before.
    cfg = lua(vim, "require('textgen').setup({ project = { exclude = { 'a' } } });"
                   "return require('textgen').setup({ project = { max_mb = 4 } }).project")
    assert cfg == {"enabled": True, "max_mb": 4, "exclude": ["a"]}


def test_a_bad_project_value_is_one_line_each_and_the_default_is_used(vim):
    project, problems = validate(vim, {"project": {"enabled": "yes", "max_mb": 0, "exclude": [1], "size": 3}})
    assert project == {"enabled": True, "max_mb": 32, "exclude": []}
    assert sorted(problems) == [
        "g:textgen.project.enabled must be true or false (got \"yes\"); using true",
        "g:textgen.project.exclude must be a list of globs such as { '*.csv', 'data/**' } (got { 1 }); using {}",
        "g:textgen.project.max_mb must be a whole number of MB from 1 to 512 (got 0); using 32",
        "g:textgen.project.size is not an option (it has enabled, max_mb, exclude)",
    ]
    for bad in (5, ["a"], 1.5):
        project, problems = validate(vim, {"project": bad})
        assert project == {"enabled": True, "max_mb": 32, "exclude": []}
        assert problems == ["g:textgen.project must be a table such as { enabled = true, max_mb = 32, exclude = {} }"]
    _, problems = validate(vim, {"project": {"max_mb": 513}})
    assert len(problems) == 1 and "max_mb" in problems[0]


# -- what the host is told -----------------------------------------------------------------------------

def test_enter_sends_the_text_once_per_changedtick(vim, tmp_path):
    # No debounced send on a loaded machine between the change and the enters (the fixture resets it).
    lua(vim, "require('textgen.memory').QUIET_MS = 60000")
    a = edit(vim, tmp_path / "a.py", "def alpha():\n    return 1\n")
    [first] = calls(vim, a)
    assert first["event"] == "enter"
    assert first["text_bytes"] == len("def alpha():\n    return 1")
    assert first["path"] == str(tmp_path / "a.py")
    assert first["project"]["enabled"] is True and first["project"]["max_mb"] == 32
    assert first["project"]["cache_dir"].endswith("/textgen")
    b = edit(vim, tmp_path / "b.py", "beta\n")
    vim.command(f"buffer {a}")
    vim.command(f"buffer {b}")
    vim.command(f"buffer {a}")
    # Entering again says so (the host may switch projects), without the text it has.
    alpha = len("def alpha():\n    return 1")
    sent = [(c["event"], c["text_bytes"]) for c in calls(vim, a)]
    assert sent == [("enter", alpha), ("enter", None), ("enter", None)]
    assert [(c["event"], c["text_bytes"]) for c in calls(vim, b)] == [("enter", len("beta")), ("enter", None)]
    vim.api.buf_set_lines(a, 0, 1, True, ["def alphabet():"])
    vim.command(f"buffer {b}")
    vim.command(f"buffer {a}")
    last = calls(vim, a)[-1]
    assert (last["event"], last["text_bytes"]) == ("enter", len("def alphabet():\n    return 1"))


def test_project_options_changed_since_the_last_event_are_sent_with_the_next_one(vim, tmp_path):
    """`g:textgen.project` set after loading: the next event of a buffer the host has as it is (leaving
    insert mode) goes, without its text, so that the host serves with the new options."""
    a = edit(vim, tmp_path / "o.txt", "options\n")
    vim.command("doautocmd InsertLeave")
    assert [c["event"] for c in calls(vim, a)] == ["enter"]              # nothing new: nothing sent
    lua(vim, "require('textgen').setup({ project = { exclude = { 'data/' } } })")
    vim.command("doautocmd InsertLeave")
    sent = calls(vim, a)[-1]
    assert (sent["event"], sent["text_bytes"], sent["project"]["exclude"]) == ("leave", None, ["data/"])
    vim.command("doautocmd InsertLeave")
    assert len(calls(vim, a)) == 2
    lua(vim, "require('textgen').setup({ project = { exclude = {} } })")


def test_a_write_sends_the_text(vim, tmp_path):
    a = edit(vim, tmp_path / "w.txt", "one\n")
    vim.api.buf_set_lines(a, 0, -1, True, ["one", "two"])
    vim.command("write")
    assert [(c["event"], c["text_bytes"]) for c in calls(vim, a)] == [("enter", 3), ("write", 7)]


def test_a_buffer_over_a_megabyte_is_named_without_its_text(vim, tmp_path):
    big = edit(vim, tmp_path / "big.txt", ("x" * 99 + "\n") * 20_000)      # 2 MB
    [sent] = calls(vim, big)
    assert sent["event"] == "enter" and sent["text_bytes"] is None and sent["path"] == str(tmp_path / "big.txt")
    small = edit(vim, tmp_path / "small.txt", "y" * 1000 + "\n")
    assert calls(vim, small)[0]["text_bytes"] == 1000


def test_nofile_terminal_and_disabled_buffers_send_nothing(vim, tmp_path):
    nofile = lua(vim, "local b = vim.api.nvim_create_buf(true, true); vim.bo[b].buftype = 'nofile';"
                      "vim.api.nvim_buf_set_lines(b, 0, -1, true, { 'scratch text' }); return b")
    terminal = lua(vim, "local b = vim.api.nvim_create_buf(true, false); vim.api.nvim_open_term(b, {}); return b")
    flagged = lua(vim, "local b = vim.api.nvim_create_buf(true, false); vim.b[b].textgen_enabled = false;"
                       "vim.api.nvim_buf_set_lines(b, 0, -1, true, { 'private' }); return b")
    lua(vim, "require('textgen').setup({ filetypes = { secret = false } })")
    excluded = lua(vim, "local b = vim.api.nvim_create_buf(true, false); vim.bo[b].filetype = 'secret';"
                        "vim.api.nvim_buf_set_lines(b, 0, -1, true, { 'hidden' }); return b")
    for buf in (nofile, terminal, flagged, excluded):
        vim.command(f"buffer {buf}")
        vim.command("doautocmd InsertLeave")
        for event in ("enter", "write", "leave"):
            assert lua(vim, "return require('textgen.memory').message(...)", buf, event) is None, (buf, event)
    assert calls(vim) == []
    vim.command(f"buffer {excluded} | setfiletype text | doautocmd InsertLeave")
    assert [c["event"] for c in calls(vim, excluded)] == ["leave"]


def test_the_open_buffers_are_sent_with_project_memory_off(vim, tmp_path):
    lua(vim, "require('textgen').setup({ project = { enabled = false } })")
    a = edit(vim, tmp_path / "off.txt", "still sent\n")
    [sent] = calls(vim, a)
    assert sent["text_bytes"] == len("still sent") and sent["project"]["enabled"] is False


def test_changes_in_normal_mode_are_sent_once_after_a_quiet_time(vim, tmp_path):
    a = edit(vim, tmp_path / "d.txt", "abcdef\n")
    # A long quiet time, so that a loaded machine cannot let it pass between two of the changes.
    lua(vim, "require('textgen.memory').QUIET_MS = 5000")
    for _ in range(4):
        vim.input("x")
        wait_for(lambda: pending(vim, a), what="a debounced send")
    assert [c["event"] for c in calls(vim, a)] == ["enter"], "sent before the quiet time"
    wait_for(lambda: not pending(vim, a), what="the quiet time")
    assert [(c["event"], c["text_bytes"]) for c in calls(vim, a)] == [("enter", 6), ("leave", 2)]
    lua(vim, "require('textgen.memory').QUIET_MS = 1000")


def test_entering_insert_mode_sends_a_change_at_once_and_its_quiet_time_send_is_dropped(vim, tmp_path):
    # `x` then `A`: the host has the text as typing begins, and the quiet-time send that `x` started
    # does not send it again halfway through the typing (the host counts the whole buffer each time).
    a = edit(vim, tmp_path / "t.txt", "abcdef\n")
    vim.input("x")
    wait_for(lambda: pending(vim, a), what="a debounced send")
    vim.input("A")
    wait_for(lambda: len(calls(vim, a)) == 2, what="the text sent on entering insert mode")
    assert not pending(vim, a)
    vim.input("yz<Esc>")
    wait_for(lambda: len(calls(vim, a)) == 3, what="the text sent on leaving insert mode")
    assert [(c["event"], c["text_bytes"]) for c in calls(vim, a)] == [("enter", 6), ("enter", 5), ("leave", 7)]


def test_a_quiet_time_that_ends_while_typing_waits_for_insert_leave(vim, tmp_path):
    # A change TextChanged reported without InsertEnter sending it after (the host was busy loading):
    # its quiet time ends in insert mode, and the text goes on leaving it, not halfway through a word;
    # leaving with CTRL-C (no InsertLeave) sends it at the next quiet time.
    lua(vim, """
      local memory = require('textgen.memory')
      memory._real_changed_soon = memory._real_changed_soon or memory.changed_soon
      memory._waits = 0
      memory.changed_soon = function(buf) memory._waits = memory._waits + 1; memory._real_changed_soon(buf) end
    """)
    try:
        for leave, typed in (("<Esc>", "gh"), ("<C-c>", "ghij")):
            sent = len("abcdef" + typed)
            a = edit(vim, tmp_path / f"q{sent}.txt", "abcdef\n")
            vim.input("A")
            wait_for(lambda: mode(vim).startswith("i"), what="insert mode")
            vim.input(typed)
            wait_for(lambda typed=typed: vim.current.buffer[0] == "abcdef" + typed, what="the text")
            lua(vim, "require('textgen.memory')._waits = 0; require('textgen.memory').changed_soon(...)", a)
            wait_for(lambda: lua(vim, "return require('textgen.memory')._waits") >= 2, what="the quiet time to end")
            assert [c["event"] for c in calls(vim, a)] == ["enter"], "sent while typing"
            vim.input(leave)
            wait_for(lambda a=a: len(calls(vim, a)) == 2, what="the text sent after insert mode")
            assert [(c["event"], c["text_bytes"]) for c in calls(vim, a)] == [("enter", 6), ("leave", sent)]
    finally:
        lua(vim, "local m = require('textgen.memory'); m.changed_soon = m._real_changed_soon")


def test_a_send_cancels_the_quiet_time_send_waiting_for_the_same_text(vim, tmp_path):
    a = edit(vim, tmp_path / "w.txt", "abcdef\n")
    vim.input("x")
    wait_for(lambda: pending(vim, a), what="a debounced send")
    vim.command("write")
    assert not pending(vim, a)
    assert [(c["event"], c["text_bytes"]) for c in calls(vim, a)] == [("enter", 6), ("write", 5)]


def test_insert_leave_sends_the_text_and_unload_tells_the_host_to_forget(vim, tmp_path):
    a = edit(vim, tmp_path / "i.txt", "ab\n")
    vim.input("Acd<Esc>")
    wait_for(lambda: len(calls(vim, a)) == 2, what="the text sent on leaving insert mode")
    assert calls(vim, a)[1]["event"] == "leave" and calls(vim, a)[1]["text_bytes"] == 4
    # TextChanged after insert mode: its debounced send finds the changedtick already sent.
    wait_for(lambda: not pending(vim, a), what="the quiet time")
    assert len(calls(vim, a)) == 2
    vim.command("enew")
    vim.command(f"bwipeout! {a}")
    assert [c["event"] for c in calls(vim, a)] == ["enter", "leave", "unload"]


def test_the_debug_ring_keeps_names_and_events_never_text(vim, tmp_path):
    edit(vim, tmp_path / "r.txt", "ring\n")
    lua(vim, "require('textgen.host').cancel(0)")
    ring = lua(vim, "return require('textgen.host').sent")
    assert ring[-1] == {"name": "TextGenHostCancel"}
    assert len(ring) <= lua(vim, "return require('textgen.host').SENT_KEPT")
    for entry in ring:
        assert set(entry) <= {"name", "event", "buf", "text_bytes"}
        if entry["name"] == "TextGenHostBuffer":
            assert entry["event"] in ("enter", "write", "leave", "unload")
    # This host keeps memory (its model summary says so): what went to it is in the ring.
    assert lua(vim, "return require('textgen.host').keeps_memory()") is True
    told = [e for e in ring if e["name"] == "TextGenHostBuffer" and e.get("event") == "enter"]
    assert told and told[-1]["text_bytes"] == len("ring")


# -- :TextGenProject and :TextGenStatus ----------------------------------------------------------------

def output_of(nvim, command):
    not_at_a_prompt(nvim)
    return nvim.api.exec2(command, {"output": True})["output"]


def test_an_unknown_textgenproject_argument_is_one_line_error(vim):
    vim.command("TextGenProject bogus")
    wait_for(lambda: "no :TextGenProject bogus" in messages(vim), what="the error")
    assert "\n" not in messages(vim).strip()
    assert vim.call("getcompletion", "TextGenProject ", "cmdline") == ["rebuild", "clear"]
    assert vim.call("getcompletion", "TextGenProject c", "cmdline") == ["clear"]


def test_textgenproject_and_status_say_what_memory_holds(vim):
    status = output_of(vim, "TextGenStatus")
    project = output_of(vim, "TextGenProject")
    assert "Error" not in project + status
    has_memory = lua(vim, "return require('textgen.host').status().memory ~= nil")
    if has_memory:
        assert "memory: " in status and "open buffer" in project
    else:           # a host older than project memory: no memory line in the status, one word in :TextGenProject
        assert "memory:" not in status
        assert project == "memory: this Python host keeps no project memory"
    lua(vim, "require('textgen').setup({ project = { enabled = false } })")
    assert "memory: project memory off (g:textgen.project.enabled)" in output_of(vim, "TextGenStatus")


def test_the_memory_lines_from_a_status_answer(vim):
    memory = {"project": {"root": "/src/app", "state": "ready", "files": 120, "bytes": 3 * 1024 * 1024,
                          "built_at": "2024-05-01T10:00:00", "from_cache": True, "changed_files": 2, "seconds": 1.5},
              "buffers": {"count": 3, "bytes": 2048}, "cache_dir": "/c/textgen"}
    lines = lua(vim, "return require('textgen.memory').status_lines(..., require('textgen.config').get())", memory)
    assert lines == [
        "memory: project /src/app: 120 files, 3.0 MB, ready, built 2024-05-01T10:00:00 (from the cache), in 1.5 s,"
        " 2 changed files counted apart",
        "memory: 3 open buffers, 2.0 KB",
    ]
    memory["project"] = {"root": "/src/app", "state": "failed", "files": 0, "bytes": 0, "reason": "disk full"}
    memory["buffers"] = {"count": 0, "bytes": 0}
    lines = lua(vim, "return require('textgen.memory').status_lines(..., require('textgen.config').get())", memory)
    assert lines[0] == "memory: project /src/app: failed, disk full"
    memory["buffers"] = {"count": 1, "bytes": 1024, "private": 2}
    lines = lua(vim, "return require('textgen.memory').status_lines(..., require('textgen.config').get())", memory)
    assert lines[1] == ("memory: 1 open buffer, 1.0 KB, 2 private (secret or excluded files: not remembered, "
                        "not learned)")
    assert lua(vim, "return require('textgen.memory').status_lines(nil, require('textgen.config').get())") == []


def test_checkhealth_has_a_project_memory_section(vim, tmp_path):
    cache = lua(vim, "return require('textgen.memory').cache_dir()") + "/projects/abc"
    vim.call("mkdir", cache, "p")
    vim.call("writefile", ["x" * 1023], cache + "/index.bin")
    text = health_report(vim)
    section = text.split("textgen: project memory", 1)[1].split("textgen: ghost text", 1)[0]
    assert "project memory is on" in section and "at most 32 MB" in section
    assert "1 file, 1.0 KB" in section and ":TextGenProject clear" in section
