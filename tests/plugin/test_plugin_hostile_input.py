"""Hostile buffers in a real Neovim: typing shows a suggestion (asked for with :TextGenComplete on a
line too long for suggestions while typing) and accepting it inserts exactly it — no error message,
no freeze (no keystroke answered more than `FREEZE_MS` later than Neovim's own slowest with suggestions
off: a deadline that only a hang misses, not a speed target; `bench/keystroke_latency.py` measures
speed), no text lost. The buffer is compared inside Neovim (a 50 MB buffer is too big to fetch over
RPC on every check)."""
from __future__ import annotations

import time

import pytest

from tests.conftest import TINY_TEXT
from tests.nvim_harness import ghost, idle, lua, mode, shared_manifest, start_nvim, wait_for


def fifty_megabytes() -> bytes:
    """A 50 MB buffer of ordinary lines (1.6 million of them), made when the test runs."""
    size = 50 * 1024 * 1024
    text = TINY_TEXT.encode()
    return (text * (size // len(text) + 1))[:size].rsplit(b"\n", 1)[0] + b"\n"


HOSTILE = {
    "binary": bytes(range(256)) * 40,
    "invalid-utf8": b"caf\xe9 na\xefve \xff\xfe text\n" * 50,
    "nul-bytes": b"abc\x00def ghi\n" * 100,
    "one-5mb-line": b"lorem ipsum dolor sit amet " * 190_000,
    "empty": b"",
    "whitespace-only": b"   \n\t\t\n      \n",
    "rtl-and-combining": "שלום עולם e\u0301 مرحبا بالعالم a\u0308\u0301\n".encode() * 30,
    "emoji": "🎉🚀 party time 👩‍👩‍👧 family 🇯🇵\n".encode() * 30,
    "crlf": b"the quick brown fox\r\njumps over the lazy dog\r\n" * 40,
    "50mb-buffer": fifty_megabytes,
}

# Lines longer than trigger.lua's LONG_LINE_BYTES get no suggestion while typing, only on request.
LONG_LINES = {"one-5mb-line"}
# A keystroke answered this much later than Neovim's own slowest (suggestions off) is a freeze.
FREEZE_MS = 3000

# Compare the buffer with the copy `KEEP_LINES` took, all inside Neovim: equal but for the last
# line, which must start with what it was, followed by what was typed (and maybe accepted).
KEEP_LINES = "_G.textgen_test_lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)"
COMPARE_LINES = """
local typed = ...
local before = _G.textgen_test_lines
local n = vim.api.nvim_buf_line_count(0)
if n ~= #before then
  return ("%d lines became %d"):format(#before, n)
end
local now = vim.api.nvim_buf_get_lines(0, 0, -1, false)
for i = 1, n - 1 do
  if now[i] ~= before[i] then
    return ("line %d changed"):format(i)
  end
end
local last, was = now[n], before[n]
if typed == "" and last ~= was then
  return "the last line changed"
end
if last:sub(1, #was) ~= was or last:sub(#was + 1, #was + #typed) ~= typed then
  return ("the last line does not read its old text, then %q"):format(typed)
end
return ""
"""


@pytest.fixture(scope="module")
def nvim(tiny_model_dir, tmp_path_factory):
    editor = start_nvim(shared_manifest(), tmp_path_factory.mktemp("nvim-home"), {"model": str(tiny_model_dir)})
    editor.input("ithe qu")                 # start the host and load the model once, as a user's first keys do
    wait_for(lambda: ghost(editor), timeout=30, what="the first ghost text")
    yield editor
    editor.close()


def answer_times(nvim, keys: str) -> list[float]:
    """Send keys one at a time; for each, the time until Neovim answered a request after it (ms)."""
    times = []
    for key in keys:
        sent = time.perf_counter()
        nvim.input(key)
        nvim.eval("1")                   # answered only once the main loop has handled the key
        times.append((time.perf_counter() - sent) * 1000)
    return times


def own_answer_times(nvim) -> list[float]:
    """`answer_times` of typing "the qu" at the end of the buffer with suggestions off (on again after)."""
    lua(nvim, "require('textgen').setup({ auto_trigger = false })")
    nvim.command("normal! G$")
    times = answer_times(nvim, "Athe qu")
    nvim.input("<Esc>")
    wait_for(lambda: mode(nvim).startswith("n"), what="normal mode")
    lua(nvim, "require('textgen').setup({ auto_trigger = true })")
    return times


def error_messages(nvim) -> list[str]:
    messages = nvim.api.exec2("messages", {"output": True})["output"].splitlines()
    return [m for m in messages if "rror" in m or m.startswith("E") and m[1:2].isdigit()]


def changes(nvim, typed: str = "") -> str:
    """How the buffer differs from the copy KEEP_LINES took ("" when only `typed` was added)."""
    return lua(nvim, COMPARE_LINES, typed)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_buffer_is_typed_in_without_errors_freezes_or_loss(nvim, tmp_path, name):
    path = tmp_path / f"{name}.txt"
    content = HOSTILE[name]
    path.write_bytes(content() if callable(content) else content)
    nvim.input("<C-\\><C-n><Esc>")
    wait_for(lambda: mode(nvim).startswith("n"), what="normal mode")
    nvim.command("silent! %bwipeout!")
    nvim.command("messages clear")
    nvim.command(f"silent edit {path}")
    lua(nvim, KEEP_LINES)
    # Neovim's own cost of a keystroke here, suggestions off (a 5 MB line takes it hundreds of ms)
    own = own_answer_times(nvim)
    nvim.input("u")
    wait_for(lambda: changes(nvim) == "", timeout=20, what="the buffer restored by undo")
    nvim.command("normal! G$")

    times = answer_times(nvim, "Athe qu")
    wait_for(lambda: idle(nvim), timeout=20, what="textgen to settle")
    if name in LONG_LINES:
        assert ghost(nvim) is None, "a suggestion while typing on a line too long for them"
        nvim.input("<Cmd>TextGenComplete<CR>")
    shown = wait_for(lambda: ghost(nvim), timeout=20, what="the ghost text")
    assert shown.text
    wait_for(lambda: idle(nvim), timeout=20, what="textgen to settle")
    shown = wait_for(lambda: ghost(nvim), what="the ghost text, settled")
    typed = "the qu" + shown.text
    nvim.input("<Tab>")
    wait_for(lambda: changes(nvim, typed) == "", what="the accepted text")
    nvim.input("<Esc>")
    wait_for(lambda: mode(nvim).startswith("n"), what="normal mode")

    assert error_messages(nvim) == [], error_messages(nvim)
    assert nvim.eval("v:errmsg") == ""
    assert changes(nvim, typed) == "", "text was lost or changed"

    assert max(times) < max(own) + FREEZE_MS, \
        f"a keystroke froze: answered in {times} ms; without suggestions {own} ms"
    lua(nvim, "_G.textgen_test_lines = nil")
