"""What the next-word search and the buffer's word votes cost a suggestion: the time to decode one (24
characters, the default model, the buffer as memory) as the plugin does (the search, `word_beam` 4,
with the word votes of `textgen_core/word_model.py` mixed in), without the votes, and without either
(`word_beam` 1: the greedy byte path), at the same random positions of held-out text, the variants
taking turns in random order (side by side in one run: noise falls on all alike).

Usage: python bench/word_search.py [--model default] [--positions 150] [--max-chars 24]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textgen_core  # noqa: E402,F401  (first: it limits BLAS to one thread before numpy loads)

from bench.quality import CONTEXT_CHARS, heldout_texts  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.decoding import DecodeOptions, decode  # noqa: E402
from textgen_core.machine import machine_summary  # noqa: E402
from textgen_core.match import MatchMixer  # noqa: E402

GRU_WINDOW = 512          # bytes the GRU state is primed on (the engine keeps it cached; not timed here)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--positions", type=int, default=150)
    parser.add_argument("--max-chars", type=int, default=24)
    args = parser.parse_args()
    model = load_model(args.model)
    no_votes = MatchMixer(model.mixer.weights, (0.0,) * len(model.mixer.word_weights))
    variants = {"search and votes": (DecodeOptions(max_chars=args.max_chars, word_beam=4), model.mixer),
                "search, no votes": (DecodeOptions(max_chars=args.max_chars, word_beam=4), no_votes),
                "greedy, no votes": (DecodeOptions(max_chars=args.max_chars, word_beam=1), no_votes)}
    rng = random.Random(1)
    print(f"machine: {machine_summary()}")
    print(f"model: {args.model}; one suggestion of {args.max_chars} chars at {args.positions} positions per text")
    for name, data in heldout_texts(20000).items():
        times: dict[str, list[float]] = {variant: [] for variant in variants}
        for _ in range(args.positions):
            position = rng.randrange(200, len(data))
            context = data[max(0, position - CONTEXT_CHARS):position]
            logits, state = model.prime(context[-GRU_WINDOW:])
            order = list(variants)
            rng.shuffle(order)
            for variant in order:
                started = time.perf_counter()
                options, mixer = variants[variant]
                decode(model.backend, state, logits, options, memory=context, mixer=mixer)
                times[variant].append((time.perf_counter() - started) * 1000)
        print(f"{name:<15} " + " | ".join(
            f"{variant}: median {statistics.median(ms):.2f} ms, p95 {percentile(ms, 0.95):.2f}"
            for variant, ms in times.items()), flush=True)


if __name__ == "__main__":
    main()
