"""Keystrokes that come while learning as you type works through a backlog: a file just opened, the
text before the cursor (up to 4 KB) not learned yet, and a person typing at once.

Learning runs on the engine's thread between requests, one SGD step per 32 bytes (~13 ms for the
default's 2×256 GRU). A request that comes in the middle of a step used to wait for it to end; now
the step asks at every byte whether to give way and is dropped if so (`OnlineLearner.learn`'s
`should_stop`; it is taken again at the next idle moment). This times, from submit to the first
partial (the engine's own clock), 12 keystrokes 40 ms apart right after such a file is opened, at
several places of a Python file, with steps that give way (as shipped) and with steps that do not
(the learner's `should_stop` ignored, as before 2026-12-07), the two taking turns per place.

    .venv/bin/python bench/learning_backlog.py [--model default] [--places 12] [--file FILE]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.keystroke_latency import percentile  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.decode import DecodeOptions  # noqa: E402
from textgen_core.memory.adaptation import OnlineLearner  # noqa: E402
from textgen_core.serve.engine import Engine  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

CONTEXT_CHARS = 4096
KEYS = 12
KEY_INTERVAL_S = 0.04
DEFAULT_FILE = Path(np.__file__).resolve().parent / "_core" / "fromnumeric.py"


class _StepsThatDoNotGiveWay(OnlineLearner):
    """The learner as it was before its steps could be dropped: `should_stop` is not asked."""

    def read(self, ids, should_stop=None):
        return super().read(ids)

    def learn(self, ids, should_stop=None):
        return super().learn(ids)


def first_partials(model, text: str, place: int, give_way: bool) -> list[float]:
    """ms from submit to the first partial of each of KEYS keystrokes typed right after opening the
    text at `place` (learning on, nothing of it learned yet)."""
    import textgen_core.serve.learning as learning

    learning.OnlineLearner = OnlineLearner if give_way else _StepsThatDoNotGiveWay
    firsts: list[float] = []
    got = threading.Event()

    def on_result(completion) -> None:
        if completion.texts and completion.texts[0] and not got.is_set():
            firsts.append(completion.elapsed_ms)
            got.set()

    context = text[max(0, place - CONTEXT_CHARS):place]
    with closing(Engine(model)) as engine:
        engine.submit(1, context, DecodeOptions(), lambda c: None, learn=True)      # the file is opened
        for key in text[place:place + KEYS]:
            time.sleep(KEY_INTERVAL_S)
            got.clear()
            context += key
            engine.submit(1, context[-CONTEXT_CHARS:], DecodeOptions(), on_result,
                          end_offset=len(context.encode()), learn=True)
            if not got.wait(10):
                raise RuntimeError("no answer within 10 s")
    learning.OnlineLearner = OnlineLearner
    return firsts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--places", type=int, default=12)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args()
    text = args.file.read_text(encoding="utf-8", errors="ignore")
    model = load_model(args.model)
    variants = {"steps give way (as shipped)": True, "steps do not give way (before)": False}
    times: dict[str, list[float]] = {name: [] for name in variants}
    step = max(1, (len(text) - CONTEXT_CHARS - KEYS) // args.places)
    for i in range(args.places):
        place = CONTEXT_CHARS + i * step
        order = list(variants.items()) if i % 2 == 0 else list(variants.items())[::-1]
        for name, give_way in order:
            times[name] += first_partials(model, text, place, give_way)
    print(f"machine: {machine_summary()}")
    print(f"model: {args.model}; {args.places} places of {args.file.name}, {KEYS} keys {KEY_INTERVAL_S * 1000:.0f} ms "
          f"apart right after opening (learning on, {CONTEXT_CHARS} characters before the cursor not learned yet)")
    for name, values in times.items():
        print(f"  {name:32} first partial n={len(values)} median {statistics.median(values):6.2f} ms   "
              f"p90 {percentile(values, 0.9):6.2f} ms   max {max(values):6.2f} ms")


if __name__ == "__main__":
    main()
