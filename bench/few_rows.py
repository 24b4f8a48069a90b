"""A decoding step of a few rows: one matrix product, or one row at a time, side by side (issue 27).

The next-word search steps the GRU on its beams, 1 to 4 rows at a time, before the first word of a
suggestion is on screen (the rest of a suggestion steps one row). Part 1 times one step of the
default model for 1 to `FEW_ROWS` rows each way, and says which way this machine's timing at load
chose (`NumpyGRU`, `rows_one_at_a_time`). Part 2 is what a user waits for: the first word (the
engine's first partial result) and the whole suggestion at `--positions` places of held-out text per
kind, the default model and its corpus n-gram, the two ways taking turns at each place, with the
GRU's state for the place primed and not timed; and how many suggestions came out the same both ways.

Usage: python bench/few_rows.py [--positions 60] [--rounds 3]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textgen_core  # noqa: E402,F401  (first: it limits BLAS to one thread before numpy loads)

# isort: split
import numpy as np  # noqa: E402

from bench.quality import CONTEXT_CHARS, heldout_texts  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.decode import DecodeOptions, decode  # noqa: E402
from textgen_core.model.numpy_gru import FEW_ROWS, NumpyGRU  # noqa: E402
from textgen_core.model.text_model import WINDOW_BYTES  # noqa: E402
from textgen_core.serve.engine import _ends_inside_a_word  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

WAYS = {"matrix product": False, "one row at a time": True}


def step_us(grus: dict[str, NumpyGRU], rows: int, steps: int = 100, repeats: int = 9) -> dict[str, float]:
    """Each way's median over `repeats` (the ways taking turns) of the mean time of one step of `rows`
    rows, in microseconds."""
    ids = np.arange(rows, dtype=np.int32) + 97
    times: dict[str, list[float]] = {way: [] for way in grus}
    for _ in range(repeats):
        for way, gru in grus.items():
            state = gru.zero_state(rows)
            started = time.perf_counter()
            for _ in range(steps):
                _, state = gru.step(ids, state)
            times[way].append((time.perf_counter() - started) / steps * 1e6)
    return {way: statistics.median(values) for way, values in times.items()}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=60, help="places per kind of held-out text")
    parser.add_argument("--rounds", type=int, default=3, help="times each place is decoded each way")
    args = parser.parse_args()
    model = load_model("default")
    info, weights = model.info, model.weights
    grus = {way: NumpyGRU(info.config, weights, rows_one_at_a_time=rows) for way, rows in WAYS.items()}
    chosen = NumpyGRU(info.config, weights).rows_one_at_a_time
    print(f"machine: {machine_summary()}")
    print(f"model: default ({info.config.hidden}×{info.config.layers} GRU); this machine's timing at load "
          f"chose: {'one row at a time' if chosen else 'the matrix product'}")
    print(f"one step, µs (median of 9 runs of 100 steps, the ways taking turns; {FEW_ROWS + 1} rows or more "
          f"take the matrix product either way):")
    print(f"  {'rows':>4}  " + "  ".join(f"{way:>18}" for way in WAYS))
    for rows in range(1, FEW_ROWS + 1):
        step_us(grus, rows, steps=10, repeats=1)                    # warm-up
        print(f"  {rows:>4}  " + "  ".join(f"{us:>18.1f}" for us in step_us(grus, rows).values()), flush=True)

    options = replace(DecodeOptions(max_chars=80), stream_every=1)
    first: dict[str, list[float]] = {way: [] for way in WAYS}
    whole: dict[str, list[float]] = {way: [] for way in WAYS}
    same = total = 0
    rng = random.Random(1)
    for kind in ("heldout python", "heldout prose", "heldout lua"):
        text = heldout_texts(20000)[kind]
        for _ in range(args.positions):
            at = rng.randrange(WINDOW_BYTES, len(text))
            context = text[max(0, at - CONTEXT_CHARS):at]
            primed = {way: gru.prime(np.frombuffer(context[-WINDOW_BYTES:], np.uint8).astype(np.int32))
                      for way, gru in grus.items()}
            texts = {}
            for round_ in range(args.rounds):
                for way in (WAYS if round_ % 2 == 0 else reversed(WAYS)):
                    logits, state = primed[way]
                    seen: list[float] = []

                    def on_partial(partial: list[str], seen: list[float] = seen) -> None:
                        # The engine's first partial result: a whole first word (`_PartialEmitter`).
                        if not seen and partial[0].strip() and not _ends_inside_a_word(partial[0]):
                            seen.append(time.perf_counter())

                    started = time.perf_counter()
                    out = decode(grus[way], state, logits, options, memory=context, mixer=model.mixer,
                                 on_partial=on_partial)
                    ended = time.perf_counter()
                    first[way].append(((seen[0] if seen else ended) - started) * 1e3)
                    whole[way].append((ended - started) * 1e3)
                    texts[way] = out
            total += 1
            same += len({tuple(t) for t in texts.values()}) == 1
    print(f"a suggestion at {total} places of held-out Python, prose and Lua ({args.rounds} times each way, "
          f"alternating), ms:")
    for way in WAYS:
        print(f"  {way:<18}  first word median {statistics.median(first[way]):5.2f}  p90 "
              f"{percentile(first[way], 0.9):5.2f}   whole median {statistics.median(whole[way]):5.2f}  p90 "
              f"{percentile(whole[way], 0.9):5.2f}")
    print(f"the same suggestion both ways at {same} of {total} places")


if __name__ == "__main__":
    main()
