"""Neovim quitting while the plugin works: nothing of it survives (no host, no job, nothing they
started) and nothing goes wrong on the way out (no traceback on the Python host's stderr).

Quitting during training is in test_plugin_train.py; both use the same checks from here. Python's
stderr is reached through a stand-in g:textgen.python that logs it to a file."""
from __future__ import annotations

from pathlib import Path

import pynvim
import pytest

from tests.nvim_harness import (
    ghost,
    host_pid,
    is_running,
    lua,
    mode,
    processes_started_for,
    shared_manifest,
    start_nvim,
    stderr_logging_python,
    wait_for,
)

PYNVIMS_OWN_ENDS = ("EOFError: connection_lost", "Exception: Received signal SIGTERM",
                    "BrokenPipeError: [Errno 32] Broken pipe")


def python_errors(stderr: str) -> list[str]:
    """Tracebacks and error lines in a Python host's stderr, but for the one pynvim itself always
    writes when Neovim goes away: its event loop re-raises how it was stopped, `EOFError:
    connection_lost` or, when Neovim's SIGTERM comes with the closed pipe, `Exception: Received
    signal SIGTERM` (pynvim lets a signal overwrite the EOF), or, when a result was on its way to
    Neovim as it went, `BrokenPipeError` from pynvim's own write. On a loaded machine the host can be killed
    while it writes that traceback (seen in a run with a training job exiting beside it), cutting it
    before its last line, or even right after its first (seen in CI on a clean clone). None may hold a
    plugin frame."""
    blocks, block = [], []
    for line in stderr.splitlines():
        if line.startswith("Traceback") and block:
            blocks.append(block)
            block = []
        block.append(line)
    blocks.append(block)
    errors = []
    for block in blocks:
        text = "\n".join(block)
        cut_short = block and block[0].startswith("Traceback") and (len(block) == 1 or block[-1].startswith("  "))
        pynvims_own_end = block and (block[-1] in PYNVIMS_OWN_ENDS or cut_short) and "textgen" not in text
        if not pynvims_own_end and any(word in text for word in ("Traceback", "Error", "Exception", "Fatal")):
            errors.append(text)
    return errors


def quit_and_check_nothing_is_left(editor: pynvim.Nvim, home: Path, stderr_log: Path) -> None:
    """`:qa!` typed as a user types it; then no process of that Neovim runs and its Pythons wrote no error."""
    running = running_before_the_quit(editor, home)
    editor.input("<C-\\><C-n>:qa!<CR>")  # input returns at once; a request could wait forever on a closing Neovim
    check_nothing_is_left(running, home, stderr_log)


def running_before_the_quit(editor: pynvim.Nvim, home: Path) -> int:
    """Neovim's process id, once `processes_started_for` is seen to find it and textgen's host (so
    that finding nothing after the quit means they ended)."""
    nvim_pid, host = editor.call("getpid"), host_pid(editor)
    found = {int(line.split(":", 1)[0]) for line in processes_started_for(home)}
    assert nvim_pid in found and (host is None or host in found), (nvim_pid, host, processes_started_for(home))
    return nvim_pid


def check_nothing_is_left(nvim_pid: int, home: Path, stderr_log: Path) -> None:
    wait_for(lambda: not is_running(nvim_pid), timeout=10, what="Neovim to quit")
    wait_for(lambda: not processes_started_for(home), timeout=10,
             what=f"every process of that Neovim to end: {processes_started_for(home)}")
    assert python_errors(stderr_log.read_text(errors="replace")) == []


QUIT_IF_PENDING = """
if require('textgen.suggestion').is_pending() then
  vim.schedule(function() vim.cmd('qa!') end)
  return true
end
return false
"""


def test_quitting_while_a_suggestion_is_decoded_leaves_no_process_and_no_traceback(tiny_model_dir, tmp_path):
    python, stderr_log = stderr_logging_python(tmp_path / "bin")
    home = tmp_path / "home"
    # Ten alternatives of up to 1024 characters each (the most there is): a long decode on the tiny model.
    editor = start_nvim(shared_manifest(), home, {"model": str(tiny_model_dir), "max_chars": 1024,
                                                  "multiline": True}, python=python)
    try:
        editor.input("ithe qu<Esc>")
        wait_for(lambda: mode(editor) == "n" and lua(editor, "return require('textgen.host').model ~= nil"),
                 timeout=30, what="the model loaded")
        host = host_pid(editor)
        assert host is not None and is_running(host)
        running = running_before_the_quit(editor, home)
        # The quit is sent in the same turn of Neovim's loop that sees the decode still pending (its
        # first part shown, not its final result); asked again should a fast machine finish first.
        for _ in range(5):
            lua(editor, "require('textgen.suggestion').dismiss()")
            editor.command("10TextGenComplete")
            wait_for(lambda: ghost(editor) is not None, timeout=10, what="the first part of the suggestion")
            if lua(editor, QUIT_IF_PENDING):
                quit_while_pending = True
                break
        else:
            quit_while_pending = False
            editor.input("<C-\\><C-n>:qa!<CR>")
        check_nothing_is_left(running, home, stderr_log)
        assert not is_running(host)
        if not quit_while_pending:
            pytest.skip("each decode ended before the quit could be sent: only quitting after it was checked")
    finally:
        try:
            editor.close()
        except Exception:
            pass


def test_only_pynvims_own_end_is_forgiven():
    """The filter above must still catch a plugin's traceback, also one that ends the same way."""
    pynvim_end = ('Traceback (most recent call last):\n  File "pynvim/plugin/host.py", line 83, in start\n'
                  '    self.nvim.run_loop(self._on_request,\n')
    assert python_errors(pynvim_end + "EOFError: connection_lost") == []
    assert python_errors(pynvim_end + "Exception: Received signal SIGTERM") == []
    ours = ('Traceback (most recent call last):\n  File "rplugin/python3/textgen/__init__.py", line 9, in f\n'
            "Exception: Received signal SIGTERM")
    assert python_errors(ours) == [ours]
    assert python_errors(pynvim_end.rstrip("\n")) == []              # cut short by a kill
    ours_cut = ours.rsplit("\n", 1)[0]
    assert python_errors(ours_cut) == [ours_cut]
    assert python_errors("ValueError: bad model") == ["ValueError: bad model"]
