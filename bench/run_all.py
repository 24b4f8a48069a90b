"""`make bench`: run every benchmark, one after another (machines here are noisy: nothing else should
run meanwhile), and write their output with the machine and the date to bench/RESULTS.md."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textgen_core.machine import machine_summary  # noqa: E402

BENCHES = [
    ("Decoding speed: numpy vs TensorFlow backend (issue 7: numpy ≥ 4× faster per byte)",
     ["bench/decode.py", "--sizes", "128x512x2,64x256x2"]),
    ("Engine latency while typing, 40 chars per request (issue 3: median ≤ 15 ms, 200 KB within 1.3× of 200 B)",
     ["bench/engine.py"]),
    ("Keystroke → ghost text in a real Neovim, default model (issue 7: median ≤ 10 ms, p95 ≤ 25 ms)",
     ["bench/keystroke_latency.py", "--chars", "300"]),
    ("The same at the end of a 1 MB buffer",
     ["bench/keystroke_latency.py", "--chars", "300", "--prefill-bytes", "1000000"]),
    ("Start-up and memory (issue 7: first suggestion ≤ 300 ms, host ≤ 80 MB, no TensorFlow)",
     ["bench/startup.py"]),
    ("Training throughput, side by side (issue 7: ≥ 2× plain model.fit)",
     ["bench/train_speed.py", "--seconds", "60"]),
    ("The same over 5 minutes per variant, for the val bpc comparison (after one minute every variant is "
     "still near the byte frequencies)",
     ["bench/train_speed.py", "--seconds", "300", "--only",
      "baseline: fit, batch 64;fused GRU, float32;fused GRU, bfloat16 products"]),
    ("Where a training step's time goes: Keras' GRU",
     ["bench/train_profile.py", "--gru", "keras"]),
    ("The same for textgen train's default (the fused GRU)",
     ["bench/train_profile.py"]),
    (":TextGenTrain while typing: bpc, wall time, editor stalls, 1 vs all TensorFlow threads (issue 5)",
     ["bench/finetune.py"]),
    ("Quality of the default model on held-out text (issue 6)",
     ["bench/quality.py"]),
]


def main() -> None:
    sections = [f"# Benchmark results\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                f"{machine_summary()}. Made by `make bench` (`python bench/run_all.py`).\n"]
    for title, command in BENCHES:
        print(f"== {title}", flush=True)
        started = time.monotonic()
        run = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
        output = "\n".join(line for line in run.stdout.splitlines() if line.strip())
        if run.returncode != 0:
            output += f"\n(failed with status {run.returncode}: {run.stderr.strip().splitlines()[-1:]})"
        print(output, flush=True)
        sections.append(f"## {title}\n\n`python {' '.join(command)}` ({time.monotonic() - started:.0f} s)\n\n"
                        f"```\n{output}\n```\n")
    (ROOT / "bench" / "RESULTS.md").write_text("\n".join(sections))
    print("wrote bench/RESULTS.md")


if __name__ == "__main__":
    main()
