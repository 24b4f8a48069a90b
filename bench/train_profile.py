"""Where a training step's time goes: the model `textgen train` builds (the fused GRU by default, or
Keras' GRU), profiled with TensorFlow's own profiler, time summed per op type, beside what the same
matrix products reach alone.

This is the profile behind the training-speed target of issue 7: it shows how much of a step is
matrix products, how fast those run inside the GRU's loop compared with the machine's GEMM rate,
and what the rest (slicing, casts, concatenation, stacking) costs. With one thread, op times add
up to the step time; with more they overlap.
Usage: python bench/train_profile.py [--size 64x256x2] [--batch 64] [--threads 1] [--gru keras|fused]
       [--precision float32|bfloat16]
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEQ_LEN = 128


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="64x256x2")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (1: CPU time, no overlap)")
    parser.add_argument("--gru", choices=("auto", "fused", "keras"), default="auto")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto")
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    import numpy as np
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from textgen_core.model.config import ModelConfig
    from textgen_core.train.keras_model import build_keras_model
    from textgen_core.train.machine import machine_summary
    from textgen_core.train.training import TrainOptions, choose_kernel

    embed, hidden, layers = (int(v) for v in args.size.split("x"))
    config = ModelConfig(embed, hidden, layers)
    kernel = choose_kernel(TrainOptions(seq_len=SEQ_LEN, gru=args.gru, precision=args.precision), config)
    model = build_keras_model(config, fused=kernel["gru"] == "fused", matmul_dtype=kernel["precision"])
    model.compile(keras.optimizers.Adam(2e-3, clipnorm=1.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch, SEQ_LEN + 1)).astype(np.int32)
    for _ in range(3):                                                    # trace and warm up
        model.train_on_batch(x[:, :-1], x[:, 1:])
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < 10:
        model.train_on_batch(x[:, :-1], x[:, 1:])
        steps += 1
    step_ms = (time.perf_counter() - started) / steps * 1e3

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(2):
            model.train_on_batch(x[:, :-1], x[:, 1:])
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    by_op: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if name and name != "ExecutorState::Process":
                    op = name.rsplit(":", 1)[-1]
                    by_op[op] += event.duration_ps / 2e9                  # ms per step (2 steps)
                    calls[op] += 1
    total = sum(by_op.values())
    matmul_ms = sum(ms for op, ms in by_op.items() if "MatMul" in op)     # _MklMatMul with oneDNN
    flop = _step_flop(config, args.batch)

    print(f"machine: {machine_summary()}; TensorFlow {tf.__version__}, {args.threads} thread(s); "
          f"{kernel['gru']} GRU, {kernel['precision']} products")
    print(f"model {args.size}, batch {args.batch} × {SEQ_LEN} bytes: {step_ms:.0f} ms per step unprofiled, "
          f"{flop / 1e9:.1f} GFLOP per step → {flop / step_ms / 1e6:.1f} GFLOP/s")
    print(f"profiled: ops add up to {total:.0f} ms per step; matrix products {matmul_ms:.0f} ms "
          f"({100 * matmul_ms / total:.0f} %) at {flop / matmul_ms / 1e6:.1f} GFLOP/s")
    print(f"{'op':<34} {'ms/step':>8} {'share':>6} {'calls/step':>10}")
    for op, ms in by_op.most_common(14):
        print(f"{op:<34} {ms:8.1f} {100 * ms / total:5.1f}% {calls[op] // 2:10d}")
    print(f"the same matrix products outside the model, {args.threads} thread(s):")
    for label, (m, k, n) in _gemm_shapes(config, args.batch).items():
        print(f"  {label:<44} {_gemm_rate(tf, m, k, n, tf.dtypes.as_dtype(kernel['precision'])):6.1f} GFLOP/s")


def _step_flop(config, batch: int) -> float:
    """Forward multiply-adds per byte × 2 FLOP × 3 (forward + two backward products) × bytes per step."""
    macs, width = 0, config.embed_dim
    for _ in range(config.layers):
        macs += 3 * config.hidden * (width + config.hidden)
        width = config.hidden
    macs += config.hidden * config.vocab_size
    return 2.0 * 3 * macs * batch * SEQ_LEN


def _gemm_shapes(config, batch: int) -> dict[str, tuple[int, int, int]]:
    h = config.hidden
    return {f"one time step: ({batch}×{h}) @ ({h}×{3 * h})": (batch, h, 3 * h),
            f"whole sequence: ({batch * SEQ_LEN}×{h}) @ ({h}×{3 * h})": (batch * SEQ_LEN, h, 3 * h)}


def _gemm_rate(tf, m: int, k: int, n: int, dtype) -> float:
    """GFLOP/s of (m×k) @ (k×n) in `dtype`, repeated in a while loop (as the GRU's time steps are)."""
    a, b = tf.cast(tf.random.normal((m, k)), dtype), tf.cast(tf.random.normal((k, n)), dtype)
    repeat = max(1, int(2e9 // (2 * m * k * n)))

    @tf.function
    def run():
        return tf.while_loop(lambda i, acc: i < repeat,
                             lambda i, acc: (i + 1, acc + tf.cast(tf.matmul(a, b)[0, 0], tf.float32)), (0, 0.0))

    run()
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < 2:
        run()
        calls += 1
    return 2 * m * k * n * repeat * calls / (time.perf_counter() - started) / 1e9

if __name__ == "__main__":
    main()
