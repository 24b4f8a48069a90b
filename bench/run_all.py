"""`make bench`: run every benchmark, one after another (machines here are noisy: nothing else should
run meanwhile), and write their output with the machine and the date to bench/RESULTS.md.

`--only TEXT` reruns the sections whose title contains TEXT (a whole run takes 40 minutes) and
replaces just those in bench/RESULTS.md, each marked with the date and machine of its rerun.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textgen_core.train.machine import machine_summary  # noqa: E402

# Installed packages as a project to type in and a text to type (what `make install` puts in .venv).
_PURELIB = Path(sysconfig.get_paths()["purelib"])
SITE = _PURELIB.relative_to(ROOT) if _PURELIB.is_relative_to(ROOT) else _PURELIB

BENCHES = [
    ("Decoding speed: numpy vs TensorFlow backend (issue 7: numpy ≥ 4× faster per byte)",
     ["bench/decode.py", "--sizes", "128x512x2,64x256x2"]),
    ("Engine latency while typing, 40 chars per request (issue 3: median ≤ 15 ms, 200 KB within 1.3× of 200 B)",
     ["bench/engine.py"]),
    ("The same with the default model",
     ["bench/engine.py", "--model", "default"]),
    ("What the next-word search and the word votes cost a suggestion (the same positions, with and without them)",
     ["bench/word_search.py"]),
    ("Cycling: how often one of 3 suggestions starts with the right word",
     ["bench/alternatives.py"]),
    ("A decoding step of the GRU in numpy and by the compiled helper, side by side (issue 27)",
     ["bench/gru_step.py"]),
    ("Keystroke → first characters with the compiled step's matrices in float32 and float16, side by side "
     "(issue 27: median ≤ 5 ms)",
     ["bench/keystroke_latency.py", "--chars", "300", "--steps", "float32,float16"]),
    ("The float32 and float16 matrices at the end of a 1 MB buffer, side by side",
     ["bench/keystroke_latency.py", "--chars", "300", "--steps", "float32,float16", "--prefill-bytes", "1000000"]),
    ("Keystroke → ghost text in a real Neovim, default model (issue 7: median ≤ 10 ms, p95 ≤ 25 ms)",
     ["bench/keystroke_latency.py", "--chars", "300"]),
    ("The same without and with learning as you type (g:textgen.learn), one fresh Neovim each",
     ["bench/keystroke_latency.py", "--chars", "300", "--learn", "off,on"]),
    ("The same at the end of a 1 MB buffer",
     ["bench/keystroke_latency.py", "--chars", "300", "--prefill-bytes", "1000000"]),
    ("Keystrokes while learning works through a file just opened: learning steps that give way or not, side by "
     "side (issue 27)",
     ["bench/learning_backlog.py", "--places", "24"]),
    ("Keystroke → first characters with g:textgen.lookahead 0 and 3, side by side (issue 27: median ≤ 5 ms, "
     "p95 ≤ 12 ms)",
     ["bench/keystroke_latency.py", "--chars", "300", "--lookahead", "0,3"]),
    ("Host memory over 30 minutes of typing at the end of a 5 MB buffer, keras (10.8 MB) as the project "
     "(issue 27: ≤ 100 MB, ≤ 60 MB private, flat)",
     ["bench/keystroke_latency.py", "--project", str(SITE / "keras"), "--prefill-bytes", "5000000",
      "--chars", "18000", "--memory-every", "60", "--text", str(SITE / "numpy" / "_core" / "fromnumeric.py")]),
    ("One OpenBLAS thread when another plugin imported numpy first, one core busy (learning and decoding steps)",
     ["bench/blas_threads.py", "--busy"]),
    ("Start-up and memory (issue 27: first ghost text ≤ 200 ms median; issue 7: host ≤ 80 MB, no TensorFlow)",
     ["bench/startup.py", "--runs", "15"]),
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
    ("Quality of the default model on the broad corpus's held-out packages, per kind (issue 28: bpc 10 % lower "
     "than before on the kinds it did not know, keystrokes saved ≥ 40 % on code, ≥ 35 % on prose)",
     ["bench/quality.py", "--corpus", "build/corpus", "--bytes", "30000", "--typing-bytes", "6000"]),
    ("What the corpus n-gram costs a suggestion: the default with and without its table, side by side",
     ["bench/ngram_cost.py", "--chars", "800"]),
    ("The n-gram's predictions by the compiled helper or in Python, side by side: a suggestion's first word and "
     "all of it (issue 27)",
     ["bench/ngram_predict.py"]),
    ("Project memory: keystrokes saved and bits per character without and with the project's n-gram (issue 24: "
     "+8 points, 15 % lower on projects the model never saw)",
     ["bench/project.py", "--files", "3"]),
    ("Keystroke → first characters with project memory off and on, side by side, keras (10.8 MB) as the project "
     "(issue 24: within 1 ms median)",
     ["bench/keystroke_latency.py", "--project", str(SITE / "keras"), "--memory", "off,on", "--chars", "300"]),
]


RESULTS = ROOT / "bench" / "RESULTS.md"


def run_section(title: str, command: list[str], rerun: bool) -> str:
    print(f"== {title}", flush=True)
    started = time.monotonic()
    run = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
    output = "\n".join(line for line in run.stdout.splitlines() if line.strip())
    if run.returncode != 0:
        output += f"\n(failed with status {run.returncode}: {run.stderr.strip().splitlines()[-1:]})"
    print(output, flush=True)
    when = f"; rerun {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine_summary()}" if rerun else ""
    return (f"## {title}\n\n`python {' '.join(command)}` ({time.monotonic() - started:.0f} s{when})\n\n"
            f"```\n{output}\n```\n")


def earlier_sections() -> tuple[str, dict[str, str]]:
    """bench/RESULTS.md split into its heading and its sections by title."""
    head, *parts = RESULTS.read_text().split("\n## ")
    return head, {part.split("\n", 1)[0]: "## " + part for part in parts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="rerun only the sections whose title contains this text")
    args = parser.parse_args()
    if args.only:
        chosen = [(title, command) for title, command in BENCHES if args.only in title]
        if not chosen:
            sys.exit(f"run_all: no section title contains {args.only!r}")
        if not RESULTS.exists():
            sys.exit("run_all: no bench/RESULTS.md yet: run make bench first")
        rerun = {title: run_section(title, command, rerun=True) for title, command in chosen}
        head, sections = earlier_sections()     # read after the runs: another run_all --only may have written
        sections.update(rerun)
        titles = [title for title, _ in BENCHES]
        ordered = [sections[title] for title in titles if title in sections]
        # a section whose benchmark was renamed or dropped stays, after the others, until a whole run
        kept = [section for title, section in sections.items() if title not in titles]
        for section in kept:
            print(f"run_all: kept a section no benchmark here makes: {section.splitlines()[0]}")
        RESULTS.write_text("\n".join([head, *ordered, *kept]))
        print(f"rewrote {len(chosen)} section(s) of bench/RESULTS.md")
        return
    sections = [f"# Benchmark results\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                f"{machine_summary()}. Made by `make bench` (`python bench/run_all.py`).\n"]
    sections += [run_section(title, command, rerun=False) for title, command in BENCHES]
    RESULTS.write_text("\n".join(sections))
    print("wrote bench/RESULTS.md")


if __name__ == "__main__":
    main()
