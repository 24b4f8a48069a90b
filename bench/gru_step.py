"""A decoding step of the GRU in numpy and by the compiled helper, side by side (issue 27).

A suggestion steps the GRU on one row, and for its first word on the next-word search's beams, 1 to
4 rows at a time, before the first word is on screen. Part 1 times one step of the default model for
1 to 8 rows each way (numpy's products, and `_gru_step.c` where `make install` built it). Part 2 is
what a user waits for: the first word (the engine's first partial result) and the whole suggestion
at `--positions` places of held-out text per kind, the default model and its corpus n-gram, the ways
taking turns at each place (which goes first alternating; one untimed decoding at each place first,
so that neither pays for the n-gram's blocks and the caches of a new place), with the GRU's state
for the place primed first (timed on its own: what a first suggestion at a new place costs before
decoding); and how many suggestions came out the same both ways.

Usage: python bench/gru_step.py [--positions 60] [--rounds 4]
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
from textgen_core.model import numpy_gru  # noqa: E402
from textgen_core.model.numpy_gru import NumpyGRU  # noqa: E402
from textgen_core.model.text_model import WINDOW_BYTES  # noqa: E402
from textgen_core.serve.engine import _ends_inside_a_word  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

WAYS = {"numpy": (False, False), "compiled step": (True, False), "compiled half": (True, True)}


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


def timed_decode(gru: NumpyGRU, primed, context: bytes, options: DecodeOptions,
                 mixer) -> tuple[float, float, list[str]]:
    """(ms to the first partial result the engine would send, ms to the whole suggestion, the texts)."""
    logits, state = primed
    seen: list[float] = []

    def on_partial(partial: list[str]) -> None:
        # The engine's first partial result: a whole first word (`_PartialEmitter`).
        if not seen and partial[0].strip() and not _ends_inside_a_word(partial[0]):
            seen.append(time.perf_counter())

    started = time.perf_counter()
    texts = decode(gru, state, logits, options, memory=context, mixer=mixer, on_partial=on_partial)
    ended = time.perf_counter()
    return ((seen[0] if seen else ended) - started) * 1e3, (ended - started) * 1e3, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=60, help="places per kind of held-out text")
    parser.add_argument("--rounds", type=int, default=4, help="times each place is decoded each way (even: "
                        "each way goes first as often)")
    args = parser.parse_args()
    model = load_model("default")
    info, weights = model.info, model.weights
    if numpy_gru.compiled is None:
        raise SystemExit("the compiled helper is not built (make install builds it; TEXTGEN_PURE_PYTHON unset)")
    grus = {way: NumpyGRU(info.config, weights, compiled_steps=compiled, half_weights=half)
            for way, (compiled, half) in WAYS.items()}
    print(f"machine: {machine_summary()}")
    print(f"model: default ({info.config.hidden}×{info.config.layers} GRU)")
    print("one step, µs (median of 9 runs of 100 steps, the ways taking turns):")
    print(f"  {'rows':>4}  " + "  ".join(f"{way:>14}" for way in grus))
    for rows in range(1, 9):
        step_us(grus, rows, steps=10, repeats=1)                    # warm-up
        print(f"  {rows:>4}  " + "  ".join(f"{us:>14.1f}" for us in step_us(grus, rows).values()), flush=True)

    options = replace(DecodeOptions(max_chars=80), stream_every=1)
    first: dict[str, list[float]] = {way: [] for way in grus}
    whole: dict[str, list[float]] = {way: [] for way in grus}
    prime_ms: dict[str, list[float]] = {way: [] for way in grus}
    same = total = 0
    rng = random.Random(1)
    order = list(grus)
    for kind in ("heldout python", "heldout prose", "heldout lua"):
        text = heldout_texts(20000)[kind]
        for _ in range(args.positions):
            at = rng.randrange(WINDOW_BYTES, len(text))
            context = text[max(0, at - CONTEXT_CHARS):at]
            ids = np.frombuffer(context[-WINDOW_BYTES:], np.uint8).astype(np.int32)
            primed = {}
            for way in (order if len(prime_ms[order[0]]) % 2 == 0 else order[::-1]):
                started = time.perf_counter()
                primed[way] = grus[way].prime(ids)
                prime_ms[way].append((time.perf_counter() - started) * 1e3)
            timed_decode(grus[order[0]], primed[order[0]], context, options, model.mixer)      # the place's warm-up
            texts = set()
            for round_ in range(args.rounds):
                for way in (order if round_ % 2 == 0 else order[::-1]):
                    first_ms, whole_ms, out = timed_decode(grus[way], primed[way], context, options, model.mixer)
                    first[way].append(first_ms)
                    whole[way].append(whole_ms)
                    texts.add(tuple(out))
            total += 1
            same += len(texts) == 1
    print(f"a suggestion at {total} places of held-out Python, prose and Lua ({args.rounds} times each way, "
          f"alternating), ms:")
    for way in grus:
        print(f"  {way:<14}  first word median {statistics.median(first[way]):5.2f}  p90 "
              f"{percentile(first[way], 0.9):5.2f}   whole median {statistics.median(whole[way]):5.2f}  p90 "
              f"{percentile(whole[way], 0.9):5.2f}")
    print(f"the same suggestion every way at {same} of {total} places")
    print(f"priming the GRU on the {WINDOW_BYTES} bytes before each place (the first suggestion at a new place), ms:")
    for way in grus:
        print(f"  {way:<14}  median {statistics.median(prime_ms[way]):5.1f}  p90 {percentile(prime_ms[way], 0.9):5.1f}")


if __name__ == "__main__":
    main()
