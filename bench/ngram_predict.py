"""What the n-gram tables cost a keystroke's suggestion, their predictions computed by the compiled
helper (`_table_lookup.predict`) or in Python, side by side.

A keystroke that needs a new suggestion searches for its first word (`decode.search`) and then
decodes the rest; every step asks each table (the corpus', the project's, the open buffers') for the
next byte's probabilities of a few rows. This times `decode` as the engine runs it, from a primed
state to the first whole word shown (what the ghost text waits for) and to the whole suggestion,
at every other position of a file typed in order, with each variant's own tables and caches (two
copies of the model and of the memory tables, as two hosts would hold them), the two taking turns
at each position (which goes first alternating). With memory: a Python package of the virtual
environment as the project (the typed file left out of it) and the file's first half as the open
buffer; without: the corpus n-gram alone.

    .venv/bin/python bench/ngram_predict.py [--project DIR] [--file FILE] [--chars 400]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.keystroke_latency import paired_difference, percentile  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.decode import DecodeOptions, decode  # noqa: E402
from textgen_core.memory import table_blocks  # noqa: E402
from textgen_core.memory.ngram import load_ngram, save_ngram  # noqa: E402
from textgen_core.memory.open_buffers import BUFFER_WEIGHTS, build_buffer_memory  # noqa: E402
from textgen_core.memory.project import build_project_memory  # noqa: E402
from textgen_core.model.text_model import context_window  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

SITE = Path(np.__file__).resolve().parent.parent
CONTEXT_BYTES = 4096


class FirstWord(Exception):
    """Raised from the partial callback once the first word is whole: where the ghost text shows."""


def timed_decode(model, mixer, data: bytes) -> tuple[float, float]:
    """Milliseconds from a primed state to the first whole word, and to the whole suggestion."""
    logits, state = model.prime(context_window(data, len(data), 320, 64))
    first: list[float] = []

    def on_partial(texts: list[str]) -> None:
        if not first and texts[0].strip() and not texts[0][-1].isalnum():
            first.append(time.perf_counter())

    started = time.perf_counter()
    decode(model.backend, state, logits, DecodeOptions(max_chars=80, stream_every=1), on_partial=on_partial,
           memory=data, mixer=mixer)
    ended = time.perf_counter()
    return ((first[0] if first else ended) - started) * 1000, (ended - started) * 1000


def mixers(project: Path, typed: Path, memory: bool, compiled: bool, folder: Path):
    """One variant's model and mixer, its tables loaded afresh (caches of its own)."""
    model = load_model("default")
    tables = [model.ngram]
    mixer = model.mixer
    if memory:
        built = build_project_memory(project, None, leave_out=[typed.read_bytes()])
        saved = folder / f"project-{compiled}"
        save_ngram(built.ngram, saved)
        project_table = load_ngram(saved).with_confidence()          # as the host loads its cache
        data = typed.read_bytes()
        buffer_table = build_buffer_memory([data[:len(data) // 2]])
        tables += [project_table, buffer_table]
        mixer = mixer.with_memories([(project_table, built.weights), (buffer_table, BUFFER_WEIGHTS)])
    if not compiled:
        for table in tables:
            table._compiled = None                                   # the Python path
    return model, mixer


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):5.2f} ms   p95 {percentile(values, 0.95):5.2f} ms   "
            f"mean {statistics.mean(values):5.2f} ms")


def paired(a: list[float], b: list[float]) -> str:
    """Median of the paired differences b − a and its 95 % bootstrap interval."""
    median, low, high = paired_difference([y - x for x, y in zip(a, b)])
    return f"median {median:+.2f} ms, 95 % {low:+.2f} … {high:+.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=SITE / "hypothesis")
    parser.add_argument("--file", type=Path, default=None, help="the file typed (default: the project's stateful.py)")
    parser.add_argument("--chars", type=int, default=400)
    args = parser.parse_args()
    if table_blocks.compiled is None or not hasattr(table_blocks.compiled, "predict"):
        raise SystemExit("the compiled helper is not built (make install builds it; TEXTGEN_PURE_PYTHON unset)")
    typed = args.file or next(args.project.rglob("stateful.py"))
    data = typed.read_bytes()
    start = len(data) // 2
    print(f"machine: {machine_summary()}")
    print(f"typed: {typed.name} ({args.chars} bytes from its middle, a suggestion at every other one); "
          f"project: {args.project.name}")
    with tempfile.TemporaryDirectory() as folder:
        for memory in (False, True):
            variants = {compiled: mixers(args.project, typed, memory, compiled, Path(folder))
                        for compiled in (True, False)}
            times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for n, end in enumerate(range(start + 2, start + args.chars, 2)):
                context = data[max(0, end - CONTEXT_BYTES):end]
                for compiled in ((True, False) if n % 2 else (False, True)):
                    times[compiled].append(timed_decode(*variants[compiled], context))
            label = "corpus n-gram, project and open buffer" if memory else "corpus n-gram alone"
            print(f"{label}: {len(times[True])} suggestions each")
            for compiled in (False, True):
                name = "compiled predict" if compiled else "Python compute  "
                print(f"  {name}  first word {summary([t[0] for t in times[compiled]])}")
                print(f"  {name}  whole      {summary([t[1] for t in times[compiled]])}")
            for i, what in ((0, "first word"), (1, "whole")):
                print(f"  compiled − Python, {what}: "
                      + paired([t[i] for t in times[False]], [t[i] for t in times[True]]))


if __name__ == "__main__":
    main()
