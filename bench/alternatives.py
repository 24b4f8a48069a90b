"""How often cycling helps: at random positions of held-out text, ask for 3 suggestions (what
`:TextGenComplete!` and <M-]> offer, the plugin's default `alternatives`) and count how often the
first one's first word is what comes next, and how often some suggestion's first word is; with the
keystrokes those words would save (a word the text goes on with, of at least 2 characters).

Usage: python bench/alternatives.py [--model default] [--positions 300] [--n 3]
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textgen_core  # noqa: E402,F401  (first: it limits BLAS to one thread before numpy loads)
from bench.quality import CONTEXT_CHARS, heldout_texts  # noqa: E402
from bench.word_search import GRU_WINDOW  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.decode import DecodeOptions, accept_words, decode, keys_saved  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402


def first_word(text: str) -> str:
    words = accept_words(text)
    return words[0] if words else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--positions", type=int, default=300)
    parser.add_argument("-n", "--n", type=int, default=3)
    args = parser.parse_args()
    model = load_model(args.model)
    rng = random.Random(2)
    print(f"machine: {machine_summary()}")
    print(f"model: {args.model}; {args.n} suggestions of 24 chars at {args.positions} positions per text, "
          f"counting first words that save ≥ 1 key")
    for name, data in heldout_texts(20000).items():
        first_hits = any_hits = first_keys = any_keys = 0
        for _ in range(args.positions):
            position = rng.randrange(200, len(data))
            context = data[max(0, position - CONTEXT_CHARS):position]
            upcoming = data[position:position + 200].decode("utf-8", "replace")
            logits, state = model.prime(context[-GRU_WINDOW:])
            texts = decode(model.backend, state, logits, DecodeOptions(max_chars=24, n=args.n),
                           memory=context, mixer=model.mixer)
            saved = [keys_saved(word) if word and upcoming.startswith(word) else 0 for word in map(first_word, texts)]
            first_hits += saved[0] > 0
            first_keys += saved[0]
            any_hits += max(saved) > 0
            any_keys += max(saved)
        print(f"{name:<15} first suggestion right {100 * first_hits / args.positions:.1f} % "
              f"({first_keys} keys)  some of {args.n} right {100 * any_hits / args.positions:.1f} % "
              f"({any_keys} keys)", flush=True)


if __name__ == "__main__":
    main()
