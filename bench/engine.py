"""Engine latency while typing: request → first streamed text and → final result (40 chars),
for contexts of 200 B, 20 KB and 200 KB typed one character at a time at 10 characters a second,
the three documents' keystrokes taking turns (side by side in one run: noise falls on all alike).

Default: E=128, H=512, L=2 with random weights whose output layer favours printable ASCII, so every
request decodes the full 40 characters (latency does not depend on the values otherwise).
`--model NAME` benchmarks a real model instead.
Usage: python bench/engine.py [--model default] [--keystrokes 150]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textgen_core  # noqa: E402,F401  (first: it limits BLAS to one thread before numpy loads)

# isort: split
import numpy as np  # noqa: E402

from bench.decode import random_weights  # noqa: E402
from textgen_core import ModelConfig, ModelInfo, TextModel, load_model  # noqa: E402
from textgen_core.decode import DecodeOptions  # noqa: E402
from textgen_core.serve.engine import Engine  # noqa: E402
from textgen_core.train.corpus import select  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

PLUGIN_TAIL_CHARS = 4096


def ascii_model(config: ModelConfig) -> TextModel:
    weights = random_weights(config)
    weights["dense/bias"] = np.full(256, -20.0, np.float32)
    weights["dense/bias"][ord("a"):ord("z") + 1] = 5.0
    weights["dense/bias"][ord(" ")] = 5.0
    return TextModel(ModelInfo(config, name=f"random {config.embed_dim}x{config.hidden}x{config.layers}"), weights)


def document(size: int) -> str:
    """Real text (Neovim help files) of at least `size` bytes plus room to type."""
    parts, total = [], 0
    for f in select(("prose",), "all"):
        text = f.path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text.encode())
        if total > size + 10_000:
            break
    return "".join(parts)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


class Typist:
    """Types one document into its own engine, one character and one request per keystroke."""

    def __init__(self, text: str, start_bytes: int, options: DecodeOptions, model: TextModel) -> None:
        self.text = text
        self.start_chars = len(text.encode()[:start_bytes].decode("utf-8", errors="ignore"))
        self.options = options
        self.engine = Engine(model)
        self.first_ms: list[float] = []
        self.final_ms: list[float] = []
        self.jump_ms = 0.0

    def keystroke(self, i: int) -> None:
        before = self.text[:self.start_chars + i]
        done = threading.Event()
        times: dict[str, float] = {}

        def callback(completion):
            if not completion.final and "first" not in times:
                times["first"] = completion.elapsed_ms
            if completion.final:
                times.setdefault("first", completion.elapsed_ms)
                times["final"] = completion.elapsed_ms
                done.set()

        self.engine.submit("doc", before[-PLUGIN_TAIL_CHARS:], self.options, callback,
                           end_offset=len(before.encode()))
        if not done.wait(10):
            raise RuntimeError("no result within 10 s")
        if i == 0:
            self.jump_ms = times["final"]     # the first request at a new place reads the whole window
        else:
            self.first_ms.append(times["first"])
            self.final_ms.append(times["final"])


def type_side_by_side(typists: list[Typist], keystrokes: int, cps: float) -> None:
    """Every typist types at `cps`; their keystrokes take turns, so the machine's noise falls on
    all context sizes alike. The next keystroke waits 1/cps after the previous one was sent, as a
    person's would, which leaves each engine time to warm its next window as it does in the editor."""
    for i in range(keystrokes + 1):
        for typist in typists:
            sent = time.perf_counter()
            typist.keystroke(i)
            time.sleep(max(0.0, 1 / cps - (time.perf_counter() - sent)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a model name or folder (default: random 128x512x2)")
    parser.add_argument("--keystrokes", type=int, default=150)
    parser.add_argument("--cps", type=float, default=10.0)
    parser.add_argument("--sizes", default="200,20000,200000")
    args = parser.parse_args()
    model = load_model(args.model) if args.model else ascii_model(ModelConfig(128, 512, 2))
    options = DecodeOptions(max_chars=40, stop_at_newline=False)
    print(f"machine: {machine_summary()}")
    print(f"model: {model.name}  ({model.config.embed_dim}x{model.config.hidden}x{model.config.layers}), "
          f"40 chars per request, {args.keystrokes} keystrokes at {args.cps:g}/s per size")
    print(f"{'context':>9} {'first median':>13} {'first p95':>10} {'final median':>13} {'final p95':>10} {'jump':>8}")
    sizes = [int(s) for s in args.sizes.split(",")]
    typists = [Typist(document(size), size, options, model) for size in sizes]
    try:
        type_side_by_side(typists, args.keystrokes, args.cps)
    finally:
        for typist in typists:
            typist.engine.close()
    medians = {}
    for size, typist in zip(sizes, typists):
        medians[size] = statistics.median(typist.final_ms)
        print(f"{size:>8,}B {statistics.median(typist.first_ms):10.2f} ms {percentile(typist.first_ms, 95):7.2f} ms "
              f"{medians[size]:10.2f} ms {percentile(typist.final_ms, 95):7.2f} ms {typist.jump_ms:5.1f} ms")
    print(f"largest / smallest context, median final: {medians[sizes[-1]] / medians[sizes[0]]:.2f}x")


if __name__ == "__main__":
    main()
