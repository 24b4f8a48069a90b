"""Keystroke → ghost-text latency in a real Neovim, typing a real text at a steady pace.

For every keystroke: the time it is sent (nvim_input) and the time the ghost text for the buffer
state it produced (its changedtick) is drawn (textgen.ghost records both, on the same monotonic
clock). The headline is the keystrokes that needed a new suggestion (a request to the model): a
keystroke whose suggestion was still on its way when the next key was due ("missed") counts as the
typing interval, the least it took. Typing through a suggestion (no request, nothing to compute) is
its own row; keystrokes answered with no suggestion, and those that asked for none, are counted.
Prints median, p95 and max, with the CPU's name.

    .venv/bin/python bench/keystroke_latency.py --model default --cps 10 --chars 400
    .venv/bin/python bench/keystroke_latency.py --learn off,on --prefill-bytes 2000   # one Neovim each
    .venv/bin/python bench/keystroke_latency.py --project .venv/lib/python3.11/site-packages/keras --memory off,on

With --project, the folder is copied into a temporary project (a pyproject.toml added, the original
never written) and the text is typed into a new file of it; --memory off,on runs a fresh Neovim
without project memory, then one with it (its index built first), and prints the host's memory after
typing: private (anonymous) and mapped from files.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.nvim_harness import lua, shared_manifest, start_nvim, wait_for  # noqa: E402
from textgen_core.train.machine import machine_summary as cpu_name  # noqa: E402

DEFAULT_TEXT = (
    "Inline ghost-text completion for Neovim from a small character-level GRU that runs on your own CPU, "
    "and that you can teach your own writing with one command. No cloud, no account, no GPU. "
    "The user types; the text before the cursor seeds a char-GRU; its continuation appears as ghost text; "
    "one key accepts it. Everything runs on the user's machine, offline, on a laptop CPU. "
    "The quick brown fox jumps over the lazy dog, and the cat sat on the mat.\n"
)

LEARN_PROBE = "return require('textgen.config').get().learn"

PROBE = """
local buf = vim.api.nvim_get_current_buf()
local r = require('textgen.ghost').last_render(buf)
return { vim.api.nvim_buf_get_changedtick(buf), r and r.tick or -1, r and r.time_ns or 0,
         require('textgen.suggestion').stats.requests, require('textgen.trigger').is_idle() }
"""


def key_for(char: str) -> str:
    return {"<": "<lt>", "\n": "<CR>", "\\": "<Bslash>", "|": "<Bar>"}.get(char, char)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(name: str, values: list[float], missed: int = 0, interval_ms: float = 0.0) -> str:
    """One row; `missed` of `values` are the typing interval, a lower bound: so is a figure that reaches it."""
    if not values:
        return f"{name:<34} n=0"
    bound = interval_ms if missed else None

    def figure(value: float) -> str:
        return f"{'≥' if bound is not None and value >= bound else ' '}{value:6.1f} ms"

    return (f"{name:<34} n={len(values):<4} median {figure(statistics.median(values))}   "
            f"p95 {figure(percentile(values, 0.95))}   max {figure(max(values))}"
            + (f"   ({missed} missed, counted as {bound:.0f} ms)" if missed else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model name or folder (default: default)")
    parser.add_argument("--text", type=Path, help="file whose text is typed (default: a built-in paragraph)")
    parser.add_argument("--chars", type=int, default=400, help="how many characters to type")
    parser.add_argument("--cps", type=float, default=10.0, help="typing speed, characters per second")
    parser.add_argument("--debounce-ms", default=None,
                        help="g:textgen.debounce_ms (default: the plugin's); several, comma-separated, take "
                             "turns keystroke by keystroke and are reported side by side")
    parser.add_argument("--prefill-bytes", type=int, default=0,
                        help="start in a buffer of this many bytes of text, typing at its end")
    parser.add_argument("--learn", default=None,
                        help="g:textgen.learn, 'on' or 'off' (default: the plugin's); 'off,on' runs a fresh "
                             "Neovim for each, one after the other")
    parser.add_argument("--project", type=Path, help="a folder to copy into a temporary project and type in")
    parser.add_argument("--memory", default="on", help="project memory 'on', 'off' or 'off,on' (with --project)")
    args = parser.parse_args()
    project = None
    if args.project:
        project = Path(tempfile.mkdtemp(prefix="textgen-bench-project-")) / args.project.name
        shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("__pycache__"))
        (project / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
    for memory in args.memory.split(",") if project else [None]:
        for learn in args.learn.split(",") if args.learn else [None]:
            if learn not in (None, "on", "off") or memory not in (None, "on", "off"):
                sys.exit(f"--learn and --memory take on, off or both, not {learn!r} / {memory!r}")
            run(args, None if learn is None else learn == "on", project, memory == "on")


def host_memory_mb(pid: int) -> tuple[float, float]:
    """The host's private (RssAnon) and file-mapped (RssFile) resident memory, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["RssAnon"].split()[0]) / 1024, int(fields["RssFile"].split()[0]) / 1024


def run(args: argparse.Namespace, learn: bool | None, project: Path | None = None, memory: bool = True) -> None:
    """Type the text in a fresh Neovim and print the latencies."""
    text = (args.text.read_text() if args.text else DEFAULT_TEXT * 4)[: args.chars]
    config = {"model": args.model, "filetypes": {"*": True}}
    if project is not None:
        config["project"] = {"enabled": memory}
    if learn is not None:
        config["learn"] = learn
    debounces = [int(d) for d in args.debounce_ms.split(",")] if args.debounce_ms else [None]
    home = Path(tempfile.mkdtemp(prefix="textgen-bench-"))
    nvim = start_nvim(shared_manifest(), home, config, columns=120, lines=40)
    try:
        if project is not None:
            nvim.command(f"edit {project / 'bench_typing.txt'}")
        nvim.command("setlocal textwidth=0 noautoindent")
        if args.prefill_bytes:
            lines = (DEFAULT_TEXT * (args.prefill_bytes // len(DEFAULT_TEXT) + 1))[: args.prefill_bytes].split("\n")
            nvim.current.buffer[:] = lines
            nvim.command("normal! G$")
            nvim.input("A")
        else:
            nvim.input("i")
        model = wait_for(lambda: lua(nvim, "local h = require('textgen.host'); return h.model and h.model.name "
                                           "or h.model_error and h.model_error.message"),
                         timeout=60, what="the model to load")
        info = lua(nvim, "return require('textgen.host').model")
        if not info:
            sys.exit(f"the model does not load: {model}")
        if project is not None and memory:
            state = wait_for(lambda: (((lua(nvim, "return require('textgen.host').status()") or {}).get("memory")
                                       or {}).get("project") or {}).get("state") in ("ready", "failed")
                             and lua(nvim, "return require('textgen.host').status()")["memory"]["project"],
                             timeout=600, what="the project's index")
            print(f"project memory: {state['files']} files, {state['bytes'] / 1e6:.1f} MB, {state['state']}")
        interval = 1.0 / args.cps
        if debounces == [None]:
            debounces = [lua(nvim, "return require('textgen.config').get().debounce_ms")]
        asked = {d: [] for d in debounces}             # needed a new suggestion: ms until it showed
        typed_through = {d: [] for d in debounces}
        missed = {d: 0 for d in debounces}             # still on its way at the next key: counted as interval
        answered_empty = {d: 0 for d in debounces}     # asked, answered, nothing to show
        not_asked = {d: 0 for d in debounces}          # no suggestion asked (a deletion, mid-line, ...)
        start = time.monotonic()
        for i, char in enumerate(text):
            debounce = debounces[i % len(debounces)]
            lua(nvim, f"require('textgen.config').set('debounce_ms', {debounce})")
            due = start + i * interval
            while time.monotonic() < due:
                time.sleep(0.0005)
            tick_before, _, _, requests_before, _ = lua(nvim, PROBE)
            sent_ns = time.monotonic_ns()
            nvim.input(key_for(char))
            next_due = start + (i + 1) * interval
            latency = None
            while time.monotonic() < next_due:
                tick, rendered_tick, rendered_ns, requests, settled = lua(nvim, PROBE)
                if tick > tick_before and rendered_tick == tick:
                    latency = (rendered_ns - sent_ns) / 1e6
                    (asked if requests > requests_before else typed_through)[debounce].append(latency)
                    break
                time.sleep(0.002)
            if latency is None:
                if not settled:                        # asked (or about to ask) and not answered yet
                    missed[debounce] += 1
                    asked[debounce].append(interval * 1000)
                elif requests > requests_before:
                    answered_empty[debounce] += 1
                else:
                    not_asked[debounce] += 1
        print(f"textgen keystroke → ghost-text latency, real Neovim {lua(nvim, 'return tostring(vim.version())')}")
        print(f"CPU: {cpu_name()}")
        print(f"model: {info['name']} ({info['layers']}×{info['hidden']} GRU, {info['parameters']} parameters), "
              f"{len(text)} characters typed at {args.cps:g}/s"
              f"{f' at the end of a {args.prefill_bytes:,}-byte buffer' if args.prefill_bytes else ''}; "
              f"g:textgen.learn {'on' if lua(nvim, LEARN_PROBE) else 'off'}")
        if project is not None:
            private, mapped = host_memory_mb(lua(nvim, "return require('textgen.host').pid()"))
            print(f"project memory {'on' if memory else 'off'} ({project.name}): host memory after typing "
                  f"{private:.0f} MB private, {mapped:.0f} MB mapped from files")
        for debounce in debounces:
            print(f"debounce {debounce} ms" + (" (keystrokes taking turns)" if len(debounces) > 1 else ""))
            print(summary("  new suggestion (the headline)", asked[debounce], missed[debounce], interval * 1000))
            print(summary("  typed through (no request)", typed_through[debounce]))
            print(f"  no ghost text: {answered_empty[debounce]} answered with no suggestion, "
                  f"{not_asked[debounce]} asked for none")
    finally:
        nvim.close()


if __name__ == "__main__":
    main()
