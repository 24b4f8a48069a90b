"""Training throughput, side by side in one run: a plain `model.fit` fp32 baseline (Keras' GRU) against
the settings `textgen train` can use (the fused GRU and its bfloat16 products, batch size, XLA,
thread counts), and `textgen train`'s own default.

Each variant trains the same model on the same data (the corpus the dependencies install) for the
same wall time in a fresh subprocess (thread settings only apply at start-up), then reports its
training throughput (bytes per second inside training steps: without the evaluation of the
held-out windows after every epoch, tracing and saving), the same between its first and last
reported step with the evaluations (every 40 steps here, a heavy share), the whole run's bytes per
second, and the val bpc it reached in the same wall time.
Usage: python bench/train_speed.py [--size 64x256x2] [--seconds 60] [--only "batch 256;batch 512"]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KERAS = {"gru": "keras", "precision": "float32"}
VARIANTS = {
    "baseline: fit, batch 64": KERAS,
    "batch 128": {**KERAS, "batch_size": 128},
    "batch 512": {**KERAS, "batch_size": 512},
    "XLA jit_compile": {**KERAS, "jit_compile": True},
    "1 intra-op thread": {**KERAS, "intra_threads": 1},
    "fused GRU, float32": {"gru": "fused", "precision": "float32"},
    "fused GRU, bfloat16 products": {"gru": "fused", "precision": "bfloat16", "needs_bf16": True},
}

WORKER = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
if spec.get("intra_threads"):
    tf.config.threading.set_intra_op_parallelism_threads(spec["intra_threads"])
from textgen_core.model.config import ModelConfig
from textgen_core.train.corpus import select
from textgen_core.train.training import TrainingText, TrainOptions, train
texts = []
total = 0
for f in select(("python", "prose", "lua"), "train")[::7]:
    data = f.path.read_bytes()
    if data:
        texts.append(TrainingText(str(f.path), data))
        total += len(data)
    if total > 3_000_000:
        break
e, h, l = (int(v) for v in spec["size"].split("x"))
options = TrainOptions(batch_size=spec.get("batch_size", 64), seq_len=128, epochs=1000, steps_per_epoch=40,
                       patience=1000, max_minutes=spec["seconds"] / 60, jit_compile=spec.get("jit_compile", False),
                       learning_rate=2e-3 * (spec.get("batch_size", 64) / 64) ** 0.5,
                       gru=spec.get("gru", "auto"), precision=spec.get("precision", "auto"))
class StepClock:
    # when each reported step ended: steady throughput leaves out tracing and evaluation
    def __init__(self):
        self.points = []
    def emit(self, event):
        if event.get("event") == "progress":
            self.points.append((time.monotonic(), event["step"]))
clock = StepClock()
result = train(texts, spec["out"], config=ModelConfig(e, h, l), options=options, reporter=clock)
steps = result.info.training["steps"]
seconds = result.info.training["seconds"]
(t0, s0), (t1, s1) = clock.points[0], clock.points[-1]
print(json.dumps({"kernel": result.info.training["kernel"],
                  "step_bytes_per_s": steps * options.batch_size * 128 / result.info.training["step_seconds"],
                  "bytes_per_s": (s1 - s0) * options.batch_size * 128 / max(t1 - t0, 1e-9),
                  "overall_bytes_per_s": steps * options.batch_size * 128 / seconds,
                  "val_bpc": result.info.metrics["val_bpc"], "steps": steps, "seconds": seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="64x256x2")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--only", help="variant names, separated by ';'")
    args = parser.parse_args()
    from textgen_core.train.machine import cpu_has_bfloat16, machine_summary

    print(f"machine: {machine_summary()}; model {args.size}; {args.seconds:g} s per variant")
    has_bf16 = cpu_has_bfloat16()
    default = {"gru": "fused", "precision": "bfloat16" if has_bf16 else "float32"}
    print(f"bfloat16 in hardware (AMX or AVX-512 BF16): {has_bf16} (bfloat16 products are only tried where it is)")
    baseline = None
    print(f"{'':<29} {'in training steps':>17}   {'with evaluations':>16}   {'whole run':>9}")
    for name, spec in VARIANTS.items():
        if (args.only and name not in args.only.split(";")) or (spec.get("needs_bf16") and not has_bf16):
            continue
        spec = dict(spec, size=args.size, seconds=args.seconds, out=str(ROOT / "build" / "bench-train-speed"))
        run = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], capture_output=True, text=True,
                             cwd=ROOT)
        if run.returncode != 0:
            print(f"{name:<32} failed: {run.stderr.strip().splitlines()[-1:]}")
            continue
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        baseline = baseline or figures
        ratio = {key: figures[key] / baseline[key] for key in ("step_bytes_per_s", "bytes_per_s")}
        print(f"{name:<29} {figures['step_bytes_per_s'] / 1000:5.1f} KB/s ×{ratio['step_bytes_per_s']:4.2f}   "
              f"{figures['bytes_per_s'] / 1000:5.1f} KB/s ×{ratio['bytes_per_s']:4.2f}   "
              f"{figures['overall_bytes_per_s'] / 1000:5.1f} KB/s   "
              f"val bpc {figures['val_bpc']:.3f} after {figures['seconds']:.0f} s ({figures['steps']} steps)"
              + ("  ← textgen train's default here" if figures["kernel"] == default else ""), flush=True)


if __name__ == "__main__":
    main()
