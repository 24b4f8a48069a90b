"""What the next-word search and the buffer's word votes cost a suggestion: the time to decode one (24
characters, the default model, the buffer as memory) as the plugin does (the search, `word_beam` 4,
with the word votes of `textgen_core/memory/word_votes.py` mixed in), without the votes, and without either
(`word_beam` 1: the greedy byte path), at the same random positions of held-out text, the variants
taking turns in random order (side by side in one run: noise falls on all alike). Every variant
mixes in the model's corpus n-gram where it has one (`--ngram model`, the plugin's way), or none does
(`--ngram off`); the first line says which.

Usage: python bench/word_search.py [--model default] [--positions 150] [--max-chars 24] [--ngram model|off]
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
from textgen_core.decode import DecodeOptions, decode  # noqa: E402
from textgen_core.memory.match import MatchMixer  # noqa: E402
from textgen_core.model.text_model import mixer_from_info  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

GRU_WINDOW = 512          # bytes the GRU state is primed on (the engine keeps it cached; not timed here)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--positions", type=int, default=150)
    parser.add_argument("--max-chars", type=int, default=24)
    parser.add_argument("--ngram", choices=("model", "off"), default="model",
                        help="every variant with the model's corpus n-gram where it has one (default), or none")
    args = parser.parse_args()
    model = load_model(args.model)
    with_votes = model.mixer if args.ngram == "model" else mixer_from_info(model.info)
    no_votes = MatchMixer(with_votes.weights, (0.0,) * len(with_votes.word_weights), ngram=with_votes.ngram,
                          ngram_weights=with_votes.ngram_weights if with_votes.ngram is not None else None)
    variants = {"search and votes": (DecodeOptions(max_chars=args.max_chars, word_beam=4), with_votes),
                "search, no votes": (DecodeOptions(max_chars=args.max_chars, word_beam=4), no_votes),
                "greedy, no votes": (DecodeOptions(max_chars=args.max_chars, word_beam=1), no_votes)}
    rng = random.Random(1)
    print(f"machine: {machine_summary()}")
    print("corpus n-gram: " + (f"in every variant ({with_votes.ngram.contexts:,} contexts)" if with_votes.ngram
                               else "in no variant (" + ("--ngram off" if model.ngram else "the model has none") + ")"))
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
