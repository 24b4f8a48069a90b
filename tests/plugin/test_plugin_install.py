"""The install promises (issue 26), in a real Neovim started as a new user's is: fresh config, data,
state and cache folders, the plugin put on 'runtimepath' as lazy.nvim or a pack/*/start folder puts
it, and nothing else. textgen runs in a Python host of its own (the plugin's `.venv` Python): no
g:python3_host_prog, no :UpdateRemotePlugins, and a user's own python3 provider left as it is. An
older Neovim than 0.10 gets one message naming the version needed, and :checkhealth / :help say which
Python the host runs, why, and how to rebuild it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pynvim
import pytest

from tests.conftest import suggest
from tests.nvim_harness import (
    NVIM,
    REPO,
    ghost,
    health_report,
    is_running,
    lua,
    messages,
    wait_for,
)
from textgen_core.decode import DecodeOptions
from textgen_core.memory.open_buffers import BUFFER_WEIGHTS, build_buffer_memory
from textgen_core.serve.engine import fresh_completion

VENV = REPO / ".venv"
OUR_PYTHON = VENV / "bin" / "python"
CONTEXT = "import numpy as"
# Removed from a new user's environment: what points at this checkout, its venv or another Neovim.
NOT_A_NEW_USERS = ("NVIM", "NVIM_LISTEN_ADDRESS", "NVIM_RPLUGIN_MANIFEST", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME",
                   "PYTHONSTARTUP", "MYVIMRC", "VIMINIT")


def new_users_env(home: Path) -> dict[str, str]:
    """A new user's environment: their own empty XDG folders, no TEXTGEN_* variable, our `.venv` not on PATH,
    no remote-plugin manifest (Neovim's default is the fresh XDG_DATA_HOME's, which nobody writes)."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_A_NEW_USERS and not k.startswith("TEXTGEN_")}
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = home / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not Path(p).resolve().is_relative_to(VENV.resolve()))
    env["HOME"] = str(home)
    return env


def rtp_line(folder: Path = REPO) -> str:
    """The one line of init.lua that puts the plugin on 'runtimepath', as lazy.nvim does."""
    return f"vim.opt.runtimepath:prepend({json.dumps(str(folder))})"


def in_a_package(home: Path, target: Path = REPO) -> Path:
    """The plugin as Neovim's packages load it: a pack/x/start/textgen.nvim symlink in the fresh data folder."""
    start = home / "xdg_data_home" / "nvim" / "site" / "pack" / "x" / "start"
    start.mkdir(parents=True, exist_ok=True)
    (start / "textgen.nvim").symlink_to(target, target_is_directory=True)
    return start / "textgen.nvim"


def start_new_users_nvim(home: Path, init_lines: list[str], columns: int = 160) -> pynvim.Nvim:
    """Neovim as a new user starts it: `-u` their init.lua (only `init_lines`), in their home folder."""
    env = new_users_env(home)
    init = home / "xdg_config_home" / "nvim" / "init.lua"
    init.parent.mkdir(parents=True, exist_ok=True)
    init.write_text("\n".join(init_lines) + "\n")
    argv = ["env", "-i", "-C", str(home), *[f"{k}={v}" for k, v in env.items()],
            str(NVIM), "--embed", "--headless", "-u", str(init)]
    nvim = pynvim.attach("child", argv=argv)
    nvim.ui_attach(columns, 30, rgb=True)
    return nvim


@pytest.fixture(scope="module")
def default_suggestion() -> tuple[str, ...]:
    """What the shipped default model (models/default, with its corpus n-gram) suggests after CONTEXT: alone,
    or with the open buffers' memory holding the buffer's text. Keys typed before the host is up reach it
    with the buffer's text (`memory.on_host_ready`), and whether that memory is counted before the request
    is served is a race: either answer is the default model's."""
    from textgen_core import load_model
    model = load_model(REPO / "models" / "default")
    alone = fresh_completion(model, CONTEXT, DecodeOptions())[0].rstrip()
    assert alone, "the default model should suggest something after " + repr(CONTEXT)
    remembered = suggest(model, [(build_buffer_memory([CONTEXT.encode()]), BUFFER_WEIGHTS)], CONTEXT,
                         DecodeOptions()).rstrip()
    assert remembered, "the default model should suggest something with the buffer as memory"
    return alone, remembered


def host_command(nvim) -> list[str]:
    """The command line of textgen's own host (not the python3 provider's, which has the same client name)."""
    pid = wait_for(lambda: lua(nvim, "return require('textgen.host').pid()"), what="textgen's host")
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def shows_the_default_models_ghost_text(nvim, expected: tuple[str, ...]) -> None:
    nvim.input("i" + CONTEXT)
    wait_for(lambda: (g := ghost(nvim)) and g.text in expected, timeout=60,
             what=f"one of the default model's suggestions {expected!r}")
    model_path = lua(nvim, "return require('textgen.host').model.path")
    assert Path(model_path).resolve() == (REPO / "models" / "default").resolve()


# -- a fresh install ------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["runtimepath", "package"])
def test_a_fresh_install_types_with_the_default_model_and_touches_no_python_provider(tmp_path, default_suggestion,
                                                                                     how):
    """lazy.nvim's way (the folder prepended to 'runtimepath') and Neovim's packages (pack/x/start, no
    line in init.lua): ghost text from models/default, served by our `.venv` Python, with nothing set."""
    if how == "package":
        in_a_package(tmp_path)
    vim = start_new_users_nvim(tmp_path, [rtp_line()] if how == "runtimepath" else [])
    try:
        shows_the_default_models_ghost_text(vim, default_suggestion)
        assert host_command(vim)[0].endswith("/.venv/bin/python")
        assert Path(host_command(vim)[0]).parent.parent.resolve() == VENV.resolve()
        # the user's python3 provider is neither set nor even loaded by textgen
        assert vim.eval("exists('g:python3_host_prog')") == 0
        assert vim.eval("exists('g:loaded_python3_provider')") == 0
        assert not list((tmp_path / "xdg_data_home").rglob("rplugin.vim"))    # no :UpdateRemotePlugins needed
        log = messages(vim)
        assert "textgen" not in log and "Error" not in log, log
        assert vim.eval("v:errmsg") == ""
    finally:
        vim.close()


# -- the user's own python3 provider --------------------------------------------------------------

def user_python(folder: Path) -> Path:
    """A Python of the user's own, unlike ours: a venv of its own with pynvim (through a .pth file naming
    our site-packages) and nothing of textgen loaded."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    site = next(folder.glob("lib/python3*/site-packages"))
    (site / "pynvim-from-elsewhere.pth").write_text(str(Path(pynvim.__file__).parent.parent) + "\n")
    return folder / "bin" / "python"


def test_the_users_python3_provider_stays_theirs_while_textgen_runs_its_own_host(tmp_path, default_suggestion):
    userpy = user_python(tmp_path / "userpy")
    vim = start_new_users_nvim(tmp_path / "home", [f"vim.g.python3_host_prog = {json.dumps(str(userpy))}",
                                                  rtp_line()])
    try:
        vim.command("py3 import sys; vim.vars['provider_prefix'] = sys.prefix")
        assert vim.vars["provider_prefix"] == str(tmp_path / "userpy")

        shows_the_default_models_ghost_text(vim, default_suggestion)
        ours = host_command(vim)
        assert Path(ours[0]).parent.parent.resolve() == VENV.resolve()
        assert lua(vim, "return require('textgen.host').python()") == ours[0]
        status = vim.api.exec2("TextGenStatus", {"output": True})["output"]
        assert f"python host: {ours[0]}" in status, status

        # the provider still runs the user's Python, with nothing of textgen in it, as they set it
        assert vim.eval("py3eval('sys.prefix')") == str(tmp_path / "userpy")
        ours_loaded = "sorted(m for m in sys.modules if m.split('.')[0] in ('textgen', 'textgen_core'))"
        assert vim.call("py3eval", ours_loaded) == []
        assert vim.vars["python3_host_prog"] == str(userpy)
        provider_pid = vim.eval("py3eval('__import__(\"os\").getpid()')")
        assert provider_pid != lua(vim, "return require('textgen.host').pid()")

        report = health_report(vim)
        assert (f"OK Python of textgen's own host: {OUR_PYTHON} (the plugin's .venv; g:textgen.python is not set)"
                in report), report
        assert (f"the plugin's .venv is {VENV}; to rebuild it: `make install` in {REPO}, or `:Lazy build textgen.nvim`"
                in report), report
        assert f"g:python3_host_prog ({userpy}) is not used by textgen and is left alone" in report, report
        assert "ERROR" not in report, report
    finally:
        vim.close()


# -- :checkhealth when the host cannot run ---------------------------------------------------------

def test_checkhealth_says_the_plugins_venv_is_missing_and_how_to_make_it(tmp_path):
    """A plugin folder without `.venv` (installed without `make install`): one message while typing, and
    :checkhealth names the missing folder and both ways to build it."""
    plugin = tmp_path / "plugins" / "textgen.nvim"
    plugin.mkdir(parents=True)
    for part in ("lua", "plugin", "rplugin", "autoload", "doc", "models"):
        (plugin / part).symlink_to(REPO / part, target_is_directory=True)
    vim = start_new_users_nvim(tmp_path / "home", [rtp_line(plugin)])
    try:
        vim.input("ithe qu")
        wait_for(lambda: "no Python to run textgen with" in messages(vim), what="the message")
        assert messages(vim).count("textgen:") == 1
        report = health_report(vim)
        venv = plugin / ".venv"
        assert f"ERROR the plugin's .venv does not exist: {venv}, so textgen's host has no Python" in report, report
        rebuild = f"Run `make install` in {plugin} (it makes {venv}), or with lazy.nvim `:Lazy build textgen.nvim`."
        assert rebuild in report, report
        assert "g:python3_host_prog (not set) is not used by textgen and is left alone" in report, report
    finally:
        vim.close()


def test_checkhealth_says_how_the_last_host_ended_and_its_last_line(tmp_path):
    """g:textgen.python that starts and dies at once: :checkhealth names it as the choice, and says how
    the host ended and the last line it wrote."""
    python = tmp_path / "dying-python"
    python.write_text("#!/bin/sh\necho 'ImportError: no module named pynvim (a test)' >&2\nexit 3\n")
    python.chmod(0o755)
    vim = start_new_users_nvim(tmp_path / "home", [f"vim.g.textgen = {{ python = {json.dumps(str(python))} }}",
                                                  rtp_line()])
    try:
        vim.input("ithe qu")
        wait_for(lambda: lua(vim, "local e = require('textgen.host').last_exit; return e ~= nil and e.at ~= nil"),
                 what="the host to end")
        report = health_report(vim)
        assert f"OK Python of textgen's own host: {python} (g:textgen.python)" in report, report
        assert re.search(r"WARNING the last host stopped \d+ s ago: exit code 3; its last line: "
                         r"ImportError: no module named pynvim \(a test\)", report), report
    finally:
        vim.close()


def test_checkhealth_after_the_host_was_killed_names_the_signal(tmp_path, default_suggestion):
    vim = start_new_users_nvim(tmp_path / "home", [rtp_line()])
    try:
        shows_the_default_models_ghost_text(vim, default_suggestion)
        pid = lua(vim, "return require('textgen.host').pid()")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not is_running(pid), timeout=10, what="the host to die")
        wait_for(lambda: lua(vim, "return require('textgen.host').running()") is False, what="the exit noticed")
        report = health_report(vim)
        assert re.search(r"WARNING the last host stopped \d+ s ago: killed by SIGKILL, e\.g\. out of memory",
                         report), report
    finally:
        vim.close()


# -- an older Neovim -------------------------------------------------------------------------------

def _version(binary: str) -> tuple[int, int, int] | None:
    try:
        first = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.match(r"NVIM v(\d+)\.(\d+)\.(\d+)", first)
    return tuple(int(n) for n in found.groups()) if found else None


def older_neovim() -> tuple[str, tuple[int, int, int]] | None:
    """A Neovim older than 0.10 on this machine (Debian 12's 0.7.2: `apt-get install neovim`), or None."""
    for candidate in (shutil.which("nvim"), "/usr/bin/nvim", "/usr/local/bin/nvim", "/snap/bin/nvim"):
        if candidate and Path(candidate).exists() and (version := _version(candidate)) and version < (0, 10, 0):
            return candidate, version
    return None


OLD = older_neovim()

# Written by the old Neovim once started: what it said and which files it ran, then :checkhealth textgen.
REPORT = """
local function write(name, value)
  local f = assert(io.open(vim.env.TEXTGEN_TEST_OUT .. "/" .. name, "w"))
  f:write(vim.fn.json_encode(value))
  f:close()
end
local scripts = vim.tbl_map(function(line)
  return vim.fn.fnamemodify(vim.fn.expand(line:gsub("^%s*%d+:%s*", "")), ":p")
end, vim.split(vim.fn.execute("scriptnames"), "\\n", { trimempty = true }))
write("startup.json", { errmsg = vim.v.errmsg, messages = vim.fn.execute("messages"), scripts = scripts })
vim.cmd("checkhealth textgen")
write("health.json", { errmsg = vim.v.errmsg, lines = vim.api.nvim_buf_get_lines(0, 0, -1, false) })
"""


def startup_files(root: Path) -> list[Path]:
    """The plugin's files that Neovim runs at startup (plugin/ and after/plugin/, at any depth)."""
    return sorted(p for folder in ("plugin", "after/plugin") for p in (root / folder).rglob("*")
                  if p.suffix in (".lua", ".vim"))


@pytest.mark.skipif(OLD is None, reason="no Neovim older than 0.10 here (Debian's: apt-get install neovim)")
@pytest.mark.parametrize("how", ["runtimepath", "package"])
def test_an_older_neovim_gets_one_message_naming_the_version_needed_and_no_error(tmp_path, how):
    binary, version = OLD
    home = tmp_path / "home"
    env = new_users_env(home)
    out = tmp_path / "out"
    out.mkdir()
    env["TEXTGEN_TEST_OUT"] = str(out)
    report = tmp_path / "report.lua"
    report.write_text(REPORT)
    if how == "package":
        root = in_a_package(home)
        places = []
    else:
        root = REPO     # as lazy.nvim puts it: the folder first, its after/ folder last
        places = ["--cmd", f"set rtp^={REPO}", "--cmd", f"set rtp+={REPO}/after"]
    result = subprocess.run([binary, "--headless", "-u", "NONE", "-i", "NONE", *places, "--cmd", "set loadplugins",
                             "-c", f"luafile {report}", "-c", "qa!"],
                            env=env, cwd=home, capture_output=True, text=True, timeout=120)
    said = f"textgen: needs Neovim 0.10 or later (inline virtual text); this is {'.'.join(map(str, version))}"
    assert result.returncode == 0, result
    startup = json.loads((out / "startup.json").read_text())
    assert startup["messages"].strip() == said, startup
    assert startup["errmsg"] == "", startup
    ran = set(startup["scripts"])
    for path in startup_files(root):
        assert str(Path(os.path.abspath(path))) in ran or str(path.resolve()) in ran, (path, sorted(ran))
    # headless, messages go to stderr without line breaks: ours once, and :checkhealth's own
    assert result.stderr.count(said) == 1, result.stderr
    assert not result.stderr.replace(said, "").replace("Running healthchecks...", "").strip(), result.stderr

    health = json.loads((out / "health.json").read_text())
    text = "\n".join(health["lines"])
    needed = f"Neovim 0.10 or later is needed (inline virtual text); this is {'.'.join(map(str, version))}"
    assert f"ERROR: {needed}" in text or f"ERROR {needed}" in text, text      # 0.7's format, 0.10's
    assert "Failed to run healthcheck" not in text and "stack traceback" not in text, text
    assert health["errmsg"] == "", health


# -- which Neovim the tests and the Makefile run ----------------------------------------------------

def test_the_tests_and_the_makefile_run_the_wheels_neovim_never_the_one_on_path():
    """A Debian nvim (0.7.2) on PATH, as .ci/run installs for the test above, is never the one tested or run."""
    assert NVIM.resolve().is_relative_to(VENV.resolve()), NVIM
    assert _version(str(NVIM)) >= (0, 10, 0)
    made = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "print-nvim: ; @echo $(NVIM)", "print-nvim"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (REPO / made.stdout.strip()).resolve() == NVIM.resolve(), made.stdout
