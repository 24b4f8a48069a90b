"""Learning and decoding steps with one OpenBLAS thread and with numpy's default, when another
plugin in Neovim's Python host imported numpy before textgen_core.

Each case runs in a fresh Python process:
- "textgen first":   textgen_core imported first (its OPENBLAS_NUM_THREADS=1 counts);
- "numpy first":     numpy imported first, then textgen_core, which sets the loaded OpenBLAS to one
                     thread (`textgen_core.model.blas`);
- "numpy's default": numpy imported first with the machine's core count as OPENBLAS_NUM_THREADS,
                     which textgen_core leaves alone (a count the user chose): what "numpy first"
                     was before `textgen_core.model.blas`.
Prints the BLAS thread count, the median and p90 of 60 learning steps (32 bytes each, the default
model) and the mean of 300 batch-1 decoding steps. With --busy, a process spins on one core
meanwhile (a build, or :TextGenTrain, running beside the editor).

    .venv/bin/python bench/blas_threads.py [--busy] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MEASURE = r"""
import sys, time
if sys.argv[1] == "numpy":
    import numpy
sys.path.insert(0, sys.argv[2])
import textgen_core
import numpy as np
from textgen_core import load_model
from textgen_core.memory.adaptation import CHUNK, OnlineLearner
from textgen_core.model.blas import blas_threads
from textgen_core.model.vocab import to_ids
model = load_model("default")
learner = OnlineLearner(model.config, model.weights)
ids = to_ids((open(sys.argv[2] + "/textgen_core/serve/engine.py", "rb").read() * 2)[:CHUNK * 61])
steps = []
for i in range(60):
    started = time.perf_counter()
    learner.learn(ids[i * CHUNK:(i + 1) * CHUNK + 1])
    steps.append(time.perf_counter() - started)
steps.sort()
_, state = model.prime(b"def main():\n    return ")
started = time.perf_counter()
for _ in range(300):
    model.backend.step(np.array([65], np.int32), state)
decode_ms = (time.perf_counter() - started) / 300 * 1000
print(blas_threads(), 1000 * steps[30], 1000 * steps[54], decode_ms)
"""

CASES = {
    "textgen first": ("textgen", None),
    "numpy first": ("numpy", None),
    "numpy's default": ("numpy", str(os.cpu_count() or 1)),
}


def run_case(first: str, threads: str | None) -> tuple[str, float, float, float]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    out = subprocess.run([sys.executable, "-c", MEASURE, first, str(REPO)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], float(out[1]), float(out[2]), float(out[3])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", action="store_true", help="spin a process on one core meanwhile")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from textgen_core.train.machine import machine_summary
    print(f"machine: {machine_summary()}; {'one core busy' if args.busy else 'idle'}")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        for round_ in range(1, args.rounds + 1):
            for name, (first, threads) in CASES.items():
                count, median, p90, decode = run_case(first, threads)
                print(f"round {round_}  {name:<16} BLAS threads {count:>4}  learning step median "
                      f"{median:5.1f} ms, p90 {p90:6.1f} ms  decoding step {decode:.3f} ms", flush=True)
    finally:
        if spinner is not None:
            spinner.kill()


if __name__ == "__main__":
    main()
