"""Engine latency while typing: request → first streamed text and → final result (40 chars),
for contexts of 200 B, 20 KB and 200 KB typed one character at a time at 10 characters a second.

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

import numpy as np  # noqa: E402

from bench.decode import random_weights  # noqa: E402
from textgen_core import ModelConfig, ModelInfo, TextModel, load_model  # noqa: E402
from textgen_core.corpus import select  # noqa: E402
from textgen_core.decoding import DecodeOptions  # noqa: E402
from textgen_core.engine import Engine  # noqa: E402
from textgen_core.machine import machine_summary  # noqa: E402

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


def type_along(engine: Engine, text: str, start_bytes: int, keystrokes: int, cps: float,
               options: DecodeOptions) -> dict[str, list[float]]:
    """Type `keystrokes` characters of `text` after its first `start_bytes` bytes, one request each."""
    start_chars = len(text.encode()[:start_bytes].decode("utf-8", errors="ignore"))
    first_ms, final_ms = [], []
    jump_ms = None
    for i in range(keystrokes + 1):
        before = text[:start_chars + i]
        tail = before[-PLUGIN_TAIL_CHARS:]
        done = threading.Event()
        times: dict[str, float] = {}

        def callback(completion, times=times, done=done):
            if not completion.final and "first" not in times:
                times["first"] = completion.elapsed_ms
            if completion.final:
                times.setdefault("first", completion.elapsed_ms)
                times["final"] = completion.elapsed_ms
                done.set()

        sent = time.perf_counter()
        engine.submit("doc", tail, options, callback, end_offset=len(before.encode()))
        if not done.wait(10):
            raise RuntimeError("no result within 10 s")
        if i == 0:
            jump_ms = times["final"]          # the first request at a new place reads the whole window
        else:
            first_ms.append(times["first"])
            final_ms.append(times["final"])
        time.sleep(max(0.0, 1 / cps - (time.perf_counter() - sent)))
    return {"first": first_ms, "final": final_ms, "jump": [jump_ms]}


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
    medians = {}
    for size in (int(s) for s in args.sizes.split(",")):
        engine = Engine(model)
        try:
            result = type_along(engine, document(size), size, args.keystrokes, args.cps, options)
        finally:
            engine.close()
        medians[size] = statistics.median(result["final"])
        print(f"{size:>8,}B {statistics.median(result['first']):10.2f} ms {percentile(result['first'], 95):7.2f} ms "
              f"{medians[size]:10.2f} ms {percentile(result['final'], 95):7.2f} ms {result['jump'][0]:5.1f} ms",
              flush=True)
    sizes = sorted(medians)
    print(f"largest / smallest context, median final: {medians[sizes[-1]] / medians[sizes[0]]:.2f}x")


if __name__ == "__main__":
    main()
