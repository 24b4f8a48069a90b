"""Training throughput of 1 worker against 2 local workers (`--strategy multiworker`, CPU, 127.0.0.1).

Every variant runs `textgen train` on the same streamed files (the Python part of the project's
corpus: 686 files, 11 MB) for the same number of steps, each worker a fresh process. The rate is timed
from the chief's progress events as they arrive, within epochs after the first (so start-up, tracing and
the validation passes are left out): steps per second, and training bytes per second (steps × sequence
length × global batch).
Usage: python bench/distributed.py [--size 64x256x1] [--steps-per-epoch 30] [--epochs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_distributed import free_ports  # noqa: E402
from textgen_core.train.corpus import select  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

SEQ_LEN = 128

# name: (workers, per-replica batch, extra environment of every worker)
VARIANTS = {
    "1 worker, batch 32": (1, 32, {}),
    "2 workers, batch 32 each (global 64)": (2, 32, {}),
    "2 workers, batch 16 each (global 32)": (2, 16, {}),
    "2 workers, 1 thread each, batch 32 each": (2, 32, {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}),
}


def run_variant(workers: int, batch: int, env: dict[str, str], args: argparse.Namespace, files: list[str],
                out: Path) -> dict:
    """Start the workers, time the chief's progress events, wait for all; the rate within epochs 2 and on."""
    ports = free_ports(workers)
    command = [sys.executable, "-m", "textgen_core", "train", *files, "--stream", "--out", str(out), "--json",
               "--embed", args.embed, "--hidden", args.hidden, "--layers", args.layers, "--seq-len", str(SEQ_LEN),
               "--batch-size", str(batch), "--epochs", str(args.epochs), "--steps-per-epoch",
               str(args.steps_per_epoch), "--patience", "1000"]
    processes = []
    progress: list[tuple[float, dict]] = []
    last: dict = {}
    try:
        for index in range(workers):
            worker_env = {**os.environ, **env, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
            if workers > 1:
                worker_env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                                      "task": {"type": "worker", "index": index}})
            strategy = ["--strategy", "multiworker"] if workers > 1 else []
            processes.append(subprocess.Popen(command + strategy, cwd=ROOT, env=worker_env, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        drains = [threading.Thread(target=p.stdout.read, daemon=True) for p in processes[1:]]
        for thread in drains:
            thread.start()
        for line in processes[0].stdout:
            if line.startswith("{"):
                event = json.loads(line)
                if event["event"] == "progress":
                    progress.append((time.monotonic(), event))
                elif event["event"] == "epoch":
                    last = event
        for p in processes:
            p.wait(timeout=600)
    finally:
        for p in processes:
            p.kill()
            p.wait()
    if any(p.returncode != 0 for p in processes) or not last:
        raise RuntimeError(f"a worker failed (exit codes {[p.returncode for p in processes]})")
    pairs = [(b[1]["step"] - a[1]["step"], b[0] - a[0]) for a, b in zip(progress, progress[1:])
             if a[1]["epoch"] == b[1]["epoch"] > 1]
    steps_per_s = sum(steps for steps, _ in pairs) / sum(seconds for _, seconds in pairs)
    return {"steps_per_s": steps_per_s, "bytes_per_s": steps_per_s * SEQ_LEN * batch * workers,
            "val_bpc": last["val_bpc"], "steps": last["step"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64x256x1", help="embed x hidden x layers")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=30)
    parser.add_argument("--only", help="comma-separated variant names")
    args = parser.parse_args()
    args.embed, args.hidden, args.layers = args.size.split("x")
    files = [str(f.path) for f in select(("python",), "train")]
    print(f"machine: {machine_summary()}; model {args.size}; {len(files)} files streamed; "
          f"{args.epochs} epochs of {args.steps_per_epoch} steps, rate within epochs 2 and on", flush=True)
    baseline = None
    with tempfile.TemporaryDirectory(prefix="textgen-bench-") as tmp:
        for name, (workers, batch, env) in VARIANTS.items():
            if args.only and name not in args.only.split(","):
                continue
            try:
                figures = run_variant(workers, batch, env, args, files, Path(tmp) / "model")
            except RuntimeError as exc:
                print(f"{name:<42} {exc}", flush=True)
                continue
            baseline = baseline or figures["bytes_per_s"]
            print(f"{name:<42} {figures['steps_per_s']:5.2f} steps/s {figures['bytes_per_s'] / 1000:7.1f} KB/s  "
                  f"×{figures['bytes_per_s'] / baseline:4.2f}  val bpc {figures['val_bpc']:.3f} "
                  f"after {figures['steps']} steps", flush=True)


if __name__ == "__main__":
    main()
