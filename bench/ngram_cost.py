"""What the corpus n-gram costs in the editor: the time to load its table and the memory it takes,
and milliseconds per suggestion with and without it, side by side (the two engines answer the same
keystroke one after the other, so a noisy machine slows both alike).

A simulated person types held-out text (as bench/quality.py does, without accepting anything);
after each keystroke each engine suggests up to --max-chars bytes (the plugin's word search and
greedy line), its GRU state cached as in the editor.

Usage: python bench/ngram_cost.py [--model default] [--chars 1500]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.quality import CONTEXT_CHARS, heldout_texts  # noqa: E402
from tests.nvim_harness import rss_mb  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.decode import DecodeOptions  # noqa: E402
from textgen_core.model.files import read_ngram  # noqa: E402
from textgen_core.model.text_model import TextModel  # noqa: E402
from textgen_core.serve.engine import Engine  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402


def suggestion_ms(engine: Engine, context: str, options: DecodeOptions) -> tuple[float, int]:
    """Milliseconds from the request to the final suggestion, and the suggestion's length in bytes."""
    done, result = threading.Event(), []

    def callback(completion):
        if completion.final:
            result.append(completion.texts[0] if completion.texts else "")
            done.set()

    started = time.perf_counter()
    engine.submit("bench", context, options, callback, end_offset=len(context.encode()))
    if not done.wait(30):
        raise RuntimeError("no suggestion within 30 s")
    return (time.perf_counter() - started) * 1000, len(result[0].encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--chars", type=int, default=1500, help="keystrokes typed per kind of text")
    parser.add_argument("--max-chars", type=int, default=24)
    args = parser.parse_args()

    before = rss_mb(os.getpid())
    model = load_model(args.model)
    if model.ngram is None:
        sys.exit(f"{args.model} has no corpus n-gram (ngram/); `make install` builds the default's")
    started = time.perf_counter()
    read_ngram(model.path)
    load_s = time.perf_counter() - started
    table_mb = sum(t.keys.nbytes + t.starts.nbytes + t.next_bytes.nbytes + t.counts.nbytes
                   for t in model.ngram.tables) / 1e6
    plain = TextModel(model.info, model.weights, path=model.path)        # the same model without the table
    print(f"machine: {machine_summary()}")
    print(f"model: {args.model}; n-gram table {model.ngram.contexts:,} contexts, {table_mb:.0f} MB of arrays, "
          f"read in {load_s:.2f} s; this process {before:.0f} MB before loading the model, "
          f"{rss_mb(os.getpid()):.0f} MB after")

    options = DecodeOptions(max_chars=args.max_chars)
    print(f"{'text':<16} {'ms per suggestion, median / p95':>32} {'ms per suggested byte':>24}")
    engines = {"with n-gram": Engine(model), "without": Engine(plain)}
    try:
        for name, data in heldout_texts(args.chars + 1).items():
            text = data.decode("utf-8", errors="replace")[:args.chars]
            times: dict[str, list[float]] = {key: [] for key in engines}
            sizes: dict[str, int] = {key: 0 for key in engines}
            for position in range(1, len(text) + 1):
                context = text[max(0, position - CONTEXT_CHARS):position]
                for key, engine in engines.items():
                    ms, size = suggestion_ms(engine, context, options)
                    times[key].append(ms)
                    sizes[key] += size
            for key in engines:
                ordered = sorted(times[key])
                print(f"{name:<16} {key:<12} {statistics.median(ordered):8.2f}"
                      f" / {ordered[int(0.95 * len(ordered))]:6.2f}"
                      f" {sum(ordered) / max(sizes[key], 1):16.3f}", flush=True)
    finally:
        for engine in engines.values():
            engine.close()


if __name__ == "__main__":
    main()
