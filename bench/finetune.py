"""Fine-tuning on the user's own text with :TextGenTrain, in a real headless Neovim, as a user runs it.

Text: ~100 KB of Keras source (`keras/src/...` from this project's virtual environment; site-packages
are not in the default model's training corpus), split 90/10. Prints: the default model's val bpc on
the last 10 %, the bpc after :TextGenTrain's default budget on the first 90 %, the wall time, the
longest editor stall while it trained (a keystroke typed in another buffer until its request is
answered; and a plain RPC round trip; the same for 20 s before it starts, as a baseline), and the CPU.
One training run per `--threads` value, side by side in one editor (each from the default model).

    .venv/bin/python bench/finetune.py [--kb 100] [--minutes M] [--threads auto,all]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.nvim_harness import idle, lua, shared_manifest, start_nvim, wait_for  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402


def keras_source() -> Path:
    """`keras/src` where the running interpreter finds Keras (this project's virtual environment),
    without importing it (its import would start TensorFlow)."""
    spec = importlib.util.find_spec("keras")
    if spec is None or not spec.origin:
        sys.exit("bench/finetune.py: Keras is not installed for this Python (make install)")
    return Path(spec.origin).parent / "src"


SOURCE_FOLDERS = ("optimizers", "callbacks", "losses", "metrics")


def keras_text(kilobytes: int) -> tuple[str, list[str]]:
    """Keras source files, in a stable order, concatenated up to `kilobytes` KB."""
    parts, names, size = [], [], 0
    keras = keras_source()
    for folder in SOURCE_FOLDERS:
        for path in sorted((keras / folder).glob("*.py")):
            if path.name.endswith("_test.py") or path.stat().st_size < 500:
                continue
            text = path.read_text()
            parts.append(text)
            names.append(str(path.relative_to(keras.parent)))
            size += len(text.encode())
            if size >= kilobytes * 1024:
                return "".join(parts), names
    return "".join(parts), names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=100)
    parser.add_argument("--minutes", type=float, help="g:textgen.train_minutes (default: the plugin's default)")
    parser.add_argument("--threads", default="auto,all",
                        help="TensorFlow threads of each training run, side by side: auto (the plugin's "
                             "choice: all cores but one), all, or a number (default: auto,all)")
    parser.add_argument("--baseline-s", type=float, default=20,
                        help="type this long before training, for the same figures without training")
    args = parser.parse_args()

    text, names = keras_text(args.kb)
    cut = int(len(text) * 0.9)
    cut = text.index("\n", cut) + 1
    train_text, val_text = text[:cut], text[cut:]
    work = Path(tempfile.mkdtemp(prefix="textgen-finetune-"))
    (work / "project").mkdir()
    train_file = work / "project" / "keras_90.py"
    train_file.write_text(train_text)

    default = load_model("default")
    before = default.bits_per_char(val_text)

    config = {"model": "default"}
    if args.minutes:
        config["train_minutes"] = args.minutes
    nvim = start_nvim(shared_manifest(), work / "home", config, models_dir=work / "models")
    runs = []
    try:
        budget = lua(nvim, "return require('textgen.config').get().train_minutes")
        default_threads = lua(nvim, "return require('textgen.train').trainer_threads()")
        wait_for(lambda: lua(nvim, "return (require('textgen.host').model or {}).name") == "default", timeout=60,
                 what="the default model")
        nvim.command(f"cd {work / 'project'}")
        nvim.command(f"edit {train_file}")
        # Meanwhile: type in a scratch buffer at ~10 keys/s and time each answer; ping the editor too.
        nvim.command("new")
        nvim.input("i")
        started = time.monotonic()
        baseline = type_while(nvim, lambda: time.monotonic() - started < args.baseline_s)
        for threads in args.threads.split(","):
            runs.append(train_while_typing(nvim, work, threads, default_threads))
    finally:
        nvim.close()

    print(f"CPU: {machine_summary()}")
    print(f"text: {len(text.encode()) / 1024:.0f} KB of Keras source ({len(names)} files: {names[0]} … {names[-1]}), "
          f"train {len(train_text.encode()) / 1024:.0f} KB / val {len(val_text.encode()) / 1024:.0f} KB")
    print(f"budget: g:textgen.train_minutes = {budget} (default model {default.config.layers}x{default.config.hidden})")
    print(f"val bpc of the default model on the last 10%: {before:.3f}")
    print(f"editor before training (baseline): {editor_figures(*baseline)}")
    for run in runs:
        after = load_model(run["out"]).bits_per_char(val_text)
        last, timeline = run["last"], run["timeline"]
        first_25 = next((t for t, v, b in timeline
                         if isinstance(v, float) and isinstance(b, float) and v <= 0.75 * b), None)
        print(f"-- trainer with {run['threads']} TensorFlow thread(s):")
        print(f"   val bpc on the last 10%: {before:.3f} → {after:.3f} ({(before - after) / before * 100:.0f}% lower); "
              + (f"trainer's own held-out bpc {last.get('before'):.3f} → {last.get('after'):.3f}, "
                 f"fell 25% at {first_25:.0f} s" if first_25 else "trainer's own held-out bpc did not fall 25%"))
        print(f"   wall time :TextGenTrain → new model in use: {run['wall']:.1f} s "
              f"(training {last.get('seconds'):.1f} s)")
        print(f"   editor while training: {editor_figures(run['gaps'], run['pings'])}")


def type_while(nvim, condition, timeline=None, started=0.0) -> tuple[list[float], list[float]]:
    """Type in the current buffer at ~10 keys/s while `condition()`; the time until each keystroke's
    request is answered, and an RPC round trip after each (sorted, seconds)."""
    keystroke_gaps, pings = [], []
    while condition():
        tick = time.monotonic()
        nvim.input("x" if len(keystroke_gaps) % 50 else "<CR>")
        wait_for(lambda: idle(nvim), timeout=30, what="the keystroke's request to be answered")
        keystroke_gaps.append(time.monotonic() - tick)
        tick = time.monotonic()
        status = lua(nvim, "return require('textgen').status().training")
        pings.append(time.monotonic() - tick)
        if timeline is not None and status.get("state") == "running":
            timeline.append((time.monotonic() - started, status.get("val_bpc"), status.get("initial_val_bpc")))
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))    # typing pace, not a wait for a result
    return sorted(keystroke_gaps), sorted(pings)


def train_while_typing(nvim, work: Path, threads: str, default_threads: int) -> dict:
    """:TextGenTrain from the default model with `threads` TensorFlow threads ("auto": the plugin's
    choice), typing in the scratch buffer until the new model is in use."""
    nvim.input("<Esc>")
    wait_for(lambda: nvim.api.get_mode()["mode"] == "n", what="normal mode")
    nvim.command("TextGenModel default")
    wait_for(lambda: lua(nvim, "return (require('textgen.host').model or {}).name") == "default", timeout=60,
             what="the default model")
    count = default_threads if threads == "auto" else os.cpu_count() if threads == "all" else int(threads)
    if threads == "auto":
        nvim.command("unlet! $TF_NUM_INTRAOP_THREADS")
    else:
        nvim.command(f"let $TF_NUM_INTRAOP_THREADS = '{count}'")
    nvim.command("wincmd p")
    out = work / "models" / f"bench-finetune-{threads}"
    timeline: list = []
    started = time.monotonic()
    nvim.command(f"TextGenTrain {out.name}")
    nvim.command("wincmd p")
    nvim.input("A")
    gaps, pings = type_while(nvim, lambda: lua(nvim, "return require('textgen').status().training.state") == "running",
                             timeline, started)
    wait_for(lambda: lua(nvim, "return (require('textgen.host').model or {}).path") == str(out), timeout=60,
             what="the new model in use")
    return {"threads": count, "out": out, "timeline": timeline,
            "wall": time.monotonic() - started, "last": lua(nvim, "return require('textgen.train').last"),
            "gaps": gaps, "pings": pings}


def editor_figures(gaps: list[float], rtts: list[float]) -> str:
    return (f"{len(gaps)} keystrokes, answer median {gaps[len(gaps) // 2] * 1000:.0f} ms, "
            f"p99 {gaps[int(len(gaps) * 0.99)] * 1000:.0f} ms, longest {gaps[-1] * 1000:.0f} ms; "
            f"RPC round trip median {rtts[len(rtts) // 2] * 1000:.1f} ms, longest {rtts[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
