"""Keystroke → ghost-text latency in a real Neovim, typing a real text at a steady pace.

For every keystroke: the time it is sent (nvim_input) and the times the ghost text for the buffer
state it produced (its changedtick) was first and last drawn (textgen.ghost records them, on the same
monotonic clock): the suggestion's first words, then the whole of it. The headline is the first
characters of a new suggestion on screen, for the keystrokes that needed one (a request to the
model); the whole suggestion is the next row. A keystroke whose suggestion was still on its way when
the next key was due ("missed") counts as the typing interval, the least it took. Typing through a
suggestion (no request, nothing to compute) is its own row; keystrokes answered with no suggestion,
and those that asked for none, are counted. Prints median, p95 and max, with the CPU's name. The
script looks at Neovim every POLL_S only (the times are taken inside Neovim): a tighter watch would
take Neovim's and the CPU's time from what it measures.

    .venv/bin/python bench/keystroke_latency.py --model default --cps 10 --chars 400
    .venv/bin/python bench/keystroke_latency.py --learn off,on --prefill-bytes 2000   # one Neovim each
    .venv/bin/python bench/keystroke_latency.py --project .venv/lib/python3.11/site-packages/keras --memory off,on
    .venv/bin/python bench/keystroke_latency.py --lookahead 0,3          # side by side, as --memory
    .venv/bin/python bench/keystroke_latency.py --steps float32,float16  # the GRU step's matrices
    .venv/bin/python bench/keystroke_latency.py --filetype python        # mixed by the weights of a kind

With --project, the folder is copied into a temporary project (a pyproject.toml added, the original
never written) and the text is typed into a new file of it. --memory off,on (or on,off) compares side
by side in one run, so that the machine's drift between two runs (±2 ms) does not pass for the cost:
two Neovims, each with its own home, on the same project copy and model, one without project memory
and one with it (its index built first); each key goes to one of them, its ghost text awaited until
the next key is due, then to the other, who goes first alternating every key (so each Neovim gets a
key after one or three typing intervals, in turn). Besides each one's rows it prints the paired
difference on − off over the keystrokes that needed a new suggestion in both and were answered in
both: its median and a 95 % bootstrap interval of that median. --lookahead 0,3 compares
g:textgen.lookahead so, --steps float32,float16 the matrices the compiled GRU step keeps. After
typing, each host's CPU time and how many requests a lookahead foresaw; with --project, the host's
memory of each after typing: private (anonymous) and mapped from files.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.nvim_harness import lua, shared_manifest, start_nvim, wait_for  # noqa: E402
from textgen_core.train.machine import machine_summary as cpu_name  # noqa: E402

DEFAULT_TEXT = (
    "Inline ghost-text completion for Neovim from a small character-level GRU that runs on your own CPU, "
    "and that you can teach your own writing with one command. No cloud, no account, no GPU. "
    "The user types; the text before the cursor seeds a char-GRU; its continuation appears as ghost text; "
    "one key accepts it. Everything runs on the user's machine, offline, on a laptop CPU. "
    "The quick brown fox jumps over the lazy dog, and the cat sat on the mat.\n"
)

LEARN_PROBE = "return require('textgen.config').get().learn"

PROBE = """
local buf = vim.api.nvim_get_current_buf()
local r = require('textgen.ghost').last_render(buf)
return { vim.api.nvim_buf_get_changedtick(buf), r and r.tick or -1, r and r.first_ns or 0, r and r.time_ns or 0,
         require('textgen.suggestion').stats.requests, require('textgen.trigger').is_idle() }
"""

# A Neovim closed before the script ends is reaped after pynvim closed its event loop: asyncio warns
# "Loop ... that handles pid ... is closed" for each, which says nothing about the measurement.
logging.getLogger("asyncio").setLevel(logging.ERROR)

POLL_S = 0.01
RESAMPLES = 1000        # bootstrap of the paired median, with a fixed seed: the same data, the same interval


def prefill_text(runtime: str, size: int) -> str:
    """`size` bytes of other text than the one typed (Neovim's help files, in name order): typed
    after a copy of itself, the text would be the buffer's own and almost every key typed through."""
    parts, held = [], 0
    for path in sorted(Path(runtime, "doc").glob("*.txt")):
        parts.append(path.read_text(errors="replace"))
        held += len(parts[-1])
        if held >= size:
            break
    text = "".join(parts)
    return (text * (size // max(len(text), 1) + 1))[:size]


def key_for(char: str) -> str:
    return {"<": "<lt>", "\n": "<CR>", "\\": "<Bslash>", "|": "<Bar>"}.get(char, char)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(name: str, values: list[float], missed: int = 0, interval_ms: float = 0.0) -> str:
    """One row; `missed` of `values` are the typing interval, a lower bound: so is a figure that reaches it."""
    if not values:
        return f"{name:<34} n=0"
    bound = interval_ms if missed else None

    def figure(value: float) -> str:
        return f"{'≥' if bound is not None and value >= bound else ' '}{value:6.1f} ms"

    return (f"{name:<34} n={len(values):<4} median {figure(statistics.median(values))}   "
            f"p95 {figure(percentile(values, 0.95))}   max {figure(max(values))}"
            + (f"   ({missed} missed, counted as {bound:.0f} ms)" if missed else ""))


def paired_difference(differences: list[float], seed: int = 0) -> tuple[float, float, float]:
    """The median of paired differences and the 2.5 and 97.5 percentiles of that median over
    `RESAMPLES` resamples of the pairs (with replacement)."""
    rng = random.Random(seed)
    medians = [statistics.median(rng.choices(differences, k=len(differences))) for _ in range(RESAMPLES)]
    return statistics.median(differences), percentile(medians, 0.025), percentile(medians, 0.975)


def host_memory_mb(pid: int) -> tuple[float, float]:
    """The host's private (RssAnon) and file-mapped (RssFile) resident memory, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["RssAnon"].split()[0]) / 1024, int(fields["RssFile"].split()[0]) / 1024


def sleep_until(moment: float) -> None:
    while time.monotonic() < moment:
        time.sleep(0.0005)


@dataclass
class Counts:
    """What the keystrokes typed with one debounce brought, in one Neovim."""

    asked: list[float] = field(default_factory=list)          # needed a new suggestion: ms until it began to show
    whole: list[float] = field(default_factory=list)          # ... and until all of it showed
    whole_missed: int = 0       # began to show, but not all of it by the next key
    typed_through: list[float] = field(default_factory=list)  # no request: ms until the ghost text was redrawn
    missed: int = 0             # still on its way at the next key: counted as the interval in `asked`
    answered_empty: int = 0     # asked, answered, nothing to show
    not_asked: int = 0          # no suggestion asked (a deletion, mid-line, ...)


class Typist:
    """One Neovim typing the text a key at a time, and what each key brought, per debounce."""

    def __init__(self, args: argparse.Namespace, home: Path, config: dict, project: Path | None,
                 memory: bool | None, lookahead: int | None = None, steps: str | None = None) -> None:
        self.memory = memory
        self.lookahead = lookahead
        self.steps = steps
        # The host inherits Neovim's environment: set before the plugin loads, before the host starts.
        commands = ("lua vim.env.TEXTGEN_FLOAT32_STEPS = '1'",) if steps == "float32" else ()
        self.nvim = start_nvim(shared_manifest(), home, config, columns=120, lines=40, commands=commands)
        if project is not None:
            self.nvim.command(f"edit {project / 'bench_typing.txt'}")
        if args.filetype:
            # the option alone (no FileType event: no ftplugin or indent script changes what is typed)
            self.nvim.command(f"noautocmd setlocal filetype={args.filetype}")
        self.nvim.command("setlocal textwidth=0 noautoindent")
        if args.prefill_bytes:
            lines = prefill_text(lua(self.nvim, "return vim.env.VIMRUNTIME"), args.prefill_bytes).split("\n")
            self.nvim.current.buffer[:] = lines
            self.nvim.command("normal! G$")
            self.nvim.input("A")
        else:
            self.nvim.input("i")
        self.debounces: list[int] = []
        self.counts: dict[int, Counts] = {}
        self.answered: dict[int, float] = {}    # keystroke → ms until its new suggestion began to show

    @property
    def name(self) -> str:
        if self.steps is not None:
            return f"{self.steps} matrices"
        if self.lookahead is not None:
            return f"lookahead {self.lookahead}"
        return "this Neovim" if self.memory is None else f"project memory {'on' if self.memory else 'off'}"

    @property
    def rank(self) -> int:
        """Which side of a paired difference: the variant with more (memory on, a longer lookahead, float16
        matrices: the newer way) − the other."""
        if self.steps is not None:
            return int(self.steps == "float16")
        return self.lookahead if self.lookahead is not None else int(bool(self.memory))

    def wait_for_model(self) -> dict:
        """The loaded model's summary; exits with the host's reason when it does not load."""
        model = wait_for(lambda: lua(self.nvim, "local h = require('textgen.host'); return h.model and h.model.name "
                                                "or h.model_error and h.model_error.message"),
                         timeout=60, what="the model to load")
        info = lua(self.nvim, "return require('textgen.host').model")
        if not info:
            sys.exit(f"the model does not load: {model}")
        return info

    def wait_for_project(self) -> dict:
        """The project memory's state once its index is ready (or failed)."""
        def project() -> dict:
            return (((lua(self.nvim, "return require('textgen.host').status()") or {}).get("memory") or {})
                    .get("project") or {})
        return wait_for(lambda: (state := project()).get("state") in ("ready", "failed") and state,
                        timeout=600, what="the project's index")

    def begin(self, debounces: list[int | None]) -> None:
        """Empty counters, one per debounce (None: the plugin's own)."""
        default = lua(self.nvim, "return require('textgen.config').get().debounce_ms")
        self.debounces = [default if d is None else d for d in debounces]
        self.counts = {d: Counts() for d in self.debounces}
        self.answered = {}

    def type_key(self, i: int, char: str, due: float, deadline: float) -> None:
        """Send key `i` at `due` and wait for its ghost text until `deadline`, counting what it brought."""
        debounce = self.debounces[i % len(self.debounces)]
        counts = self.counts[debounce]
        lua(self.nvim, f"require('textgen.config').set('debounce_ms', {debounce})")
        sleep_until(due)
        tick_before, _, _, _, requests_before, _ = lua(self.nvim, PROBE)
        sent_ns = time.monotonic_ns()
        self.nvim.input(key_for(char))
        requests, settled, shown = requests_before, False, False
        while time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            tick, rendered_tick, first_ns, last_ns, requests, settled = lua(self.nvim, PROBE)
            shown = tick > tick_before and rendered_tick == tick
            if shown and settled:
                break
        if shown:
            first = (first_ns - sent_ns) / 1e6
            if requests == requests_before:
                counts.typed_through.append(first)
                return
            counts.asked.append(first)
            self.answered[i] = first
            if settled:
                counts.whole.append((last_ns - sent_ns) / 1e6)
            else:
                counts.whole_missed += 1
                counts.whole.append((deadline - due) * 1000)
            return
        if not settled:                        # asked (or about to ask) and not answered yet
            counts.missed += 1
            counts.asked.append((deadline - due) * 1000)
            counts.whole.append((deadline - due) * 1000)
        elif requests > requests_before:
            counts.answered_empty += 1
        else:
            counts.not_asked += 1

    def report(self, interval_ms: float, taking_turns: bool) -> None:
        for debounce, counts in self.counts.items():
            print(f"debounce {debounce} ms" + (" (keystrokes taking turns)" if taking_turns else ""))
            print(summary("  new suggestion, first characters", counts.asked, counts.missed, interval_ms))
            print(summary("  new suggestion, all of it", counts.whole, counts.missed + counts.whole_missed,
                          interval_ms))
            print(summary("  typed through (no request)", counts.typed_through))
            print(f"  no ghost text: {counts.answered_empty} answered with no suggestion, "
                  f"{counts.not_asked} asked for none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model name or folder (default: default)")
    parser.add_argument("--text", type=Path, help="file whose text is typed (default: a built-in paragraph)")
    parser.add_argument("--chars", type=int, default=400, help="how many characters to type")
    parser.add_argument("--cps", type=float, default=10.0, help="typing speed, characters per second")
    parser.add_argument("--debounce-ms", default=None,
                        help="g:textgen.debounce_ms (default: the plugin's); several, comma-separated, take "
                             "turns keystroke by keystroke and are reported side by side")
    parser.add_argument("--filetype", default="",
                        help="the typing buffer's 'filetype' (default none): the model mixes by the weights fitted "
                             "on its kind of text (:help textgen-kinds)")
    parser.add_argument("--prefill-bytes", type=int, default=0,
                        help="start in a buffer of this many bytes of other text (Neovim's help), typing at its end")
    parser.add_argument("--learn", default=None,
                        help="g:textgen.learn, 'on' or 'off' (default: the plugin's); 'off,on' runs a fresh "
                             "Neovim for each, one after the other")
    parser.add_argument("--project", type=Path, help="a folder to copy into a temporary project and type in")
    parser.add_argument("--lookahead", default=None,
                        help="g:textgen.lookahead (default: the plugin's); '0,3' types into a Neovim of each "
                             "side by side, as --memory does")
    parser.add_argument("--steps", default=None,
                        help="the matrices the compiled GRU step keeps: 'float16' (where the CPU can, the default) "
                             "or 'float32' (TEXTGEN_FLOAT32_STEPS=1); 'float32,float16' types into a Neovim of "
                             "each side by side, as --memory does")
    parser.add_argument("--memory-every", type=float, default=0.0, metavar="SECONDS",
                        help="sample each host's memory this often while typing and print the series "
                             "(a soak: --chars 18000 types for 30 minutes at 10/s)")
    parser.add_argument("--memory", default="on",
                        help="project memory 'on' or 'off' (with --project); 'off,on' or 'on,off' types into "
                             "a Neovim of each side by side, taking turns key by key, the first listed first")
    args = parser.parse_args()
    learns = args.learn.split(",") if args.learn else [None]
    memories = args.memory.split(",") if args.project else [None]
    if not set(learns) <= {None, "on", "off"} or not set(memories) <= {None, "on", "off"} \
            or len(set(memories)) != len(memories):
        sys.exit(f"--learn and --memory take on, off or both, not {args.learn!r} / {args.memory!r}")
    lookaheads: list[int | None] = [int(n) for n in args.lookahead.split(",")] if args.lookahead else [None]
    steps: list[str | None] = args.steps.split(",") if args.steps else [None]
    if not set(steps) <= {None, "float16", "float32"} or len(set(steps)) != len(steps):
        sys.exit(f"--steps takes float16, float32 or both, not {args.steps!r}")
    if sum(len(compared) > 1 for compared in (lookaheads, memories, steps)) > 1:
        sys.exit("compare one of --memory, --lookahead and --steps side by side, not two")
    with ExitStack() as stack:
        project = None
        if args.project:
            temporary = stack.enter_context(tempfile.TemporaryDirectory(prefix="textgen-bench-project-",
                                                                        ignore_cleanup_errors=True))
            project = Path(temporary) / args.project.name
            shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("__pycache__"))
            (project / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
        for learn in learns:
            variants = [(None if memory is None else memory == "on", lookahead, step)
                        for memory in memories for lookahead in lookaheads for step in steps]
            run(args, None if learn is None else learn == "on", project, variants)


def run(args: argparse.Namespace, learn: bool | None, project: Path | None,
        variants: list[tuple[bool | None, int | None, str | None]]) -> None:
    """Type the text into a fresh Neovim per (project memory, lookahead, step matrices) variant, taking
    turns key by key, and print the latencies (paired where there are two)."""
    text = args.text.read_text() if args.text else DEFAULT_TEXT * 4
    text = (text * (args.chars // max(len(text), 1) + 1))[: args.chars]      # a long run types it again
    debounces = [int(d) for d in args.debounce_ms.split(",")] if args.debounce_ms else [None]
    interval = 1.0 / args.cps
    with ExitStack() as stack:
        typists = []
        for memory, lookahead, step in variants:
            config: dict = {"model": args.model, "filetypes": {"*": True}}
            if memory is not None:
                config["project"] = {"enabled": memory}
            if lookahead is not None:
                config["lookahead"] = lookahead
            if learn is not None:
                config["learn"] = learn
            home = stack.enter_context(tempfile.TemporaryDirectory(prefix="textgen-bench-",
                                                                   ignore_cleanup_errors=True))
            typist = Typist(args, Path(home), config, project, memory, lookahead, step)
            stack.callback(typist.nvim.close)
            typists.append(typist)
        info = [typist.wait_for_model() for typist in typists][0]    # the same model in each
        for typist in typists:
            if typist.memory:
                state = typist.wait_for_project()
                print(f"project memory: {state['files']} files, {state['bytes'] / 1e6:.1f} MB, {state['state']}")
            typist.begin(debounces)

        # Key i goes to each Neovim in turn, given one interval each; the first of the turn alternates.
        start = time.monotonic()
        memory = MemorySeries(typists, args.memory_every)
        for i, char in enumerate(text):
            turn = typists[i % len(typists):] + typists[: i % len(typists)]
            for k, typist in enumerate(turn):
                due = start + (i * len(typists) + k) * interval
                typist.type_key(i, char, due, due + interval)
            memory.sample(time.monotonic() - start)
        memory.sample(time.monotonic() - start, last=True)

        first = typists[0].nvim
        print(f"textgen keystroke → ghost-text latency, real Neovim {lua(first, 'return tostring(vim.version())')}")
        print(f"CPU: {cpu_name()}")
        pace = f"{len(text)} characters typed at {args.cps:g}/s"
        if len(typists) > 1:
            pace = (f"{len(text)} characters, each key typed into both Neovims in turn (the first alternating), "
                    f"each given {interval * 1000:.0f} ms (typing at {args.cps:g}/s) before the next")
        print(f"model: {info['name']} ({info['layers']}×{info['hidden']} GRU, {info['parameters']} parameters), "
              f"{pace}{f' at the end of a {args.prefill_bytes:,}-byte buffer' if args.prefill_bytes else ''}"
              f"{f', filetype {args.filetype}' if args.filetype else ''}; "
              f"g:textgen.learn {'on' if lua(first, LEARN_PROBE) else 'off'}")
        for typist in typists:
            if len(typists) > 1:
                print(typist.name)
            typist.report(interval * 1000, taking_turns=len(typist.debounces) > 1)
        if len(typists) == 2:
            report_paired(typists)
        for typist in typists:
            pid = lua(typist.nvim, "return require('textgen.host').pid()")
            engine = (lua(typist.nvim, "return require('textgen.host').status()") or {}).get("engine") or {}
            print(f"{typist.name}: host CPU {host_cpu_s(pid):.1f} s (start included); {engine.get('served')} "
                  f"requests served, {engine.get('guessed')} of them foreseen by a lookahead")
        memory.report()
        if project is not None and not args.memory_every:
            for typist in typists:
                private, mapped = host_memory_mb(lua(typist.nvim, "return require('textgen.host').pid()"))
                print(f"{typist.name} ({project.name}): host memory after typing "
                      f"{private:.0f} MB private, {mapped:.0f} MB mapped from files")


class MemorySeries:
    """Each host's private and file-mapped memory every `every` seconds of typing: whether it stays
    flat. The summary compares the end with the sample at `SETTLED_S` (5 minutes in), when the
    caches have filled."""

    SETTLED_S = 300.0

    def __init__(self, typists: list[Typist], every: float) -> None:
        self.every = every
        self.typists = typists
        self.pids = [lua(t.nvim, "return require('textgen.host').pid()") for t in typists] if every else []
        self.samples: list[tuple[float, list[tuple[float, float]]]] = []

    def sample(self, elapsed: float, last: bool = False) -> None:
        if self.every and (last or not self.samples or elapsed >= self.samples[-1][0] + self.every):
            self.samples.append((elapsed, [host_memory_mb(pid) for pid in self.pids]))

    def report(self) -> None:
        if not self.samples:
            return
        print("host memory while typing, MB private + MB mapped from files:")
        for elapsed, sizes in self.samples:
            print(f"  {int(elapsed) // 60:3d}:{int(elapsed) % 60:02d}  " + "   ".join(
                f"{t.name}: {private:5.1f} + {mapped:5.1f}" for t, (private, mapped) in zip(self.typists, sizes)))
        settled = next((s for s in self.samples if s[0] >= self.SETTLED_S), None)
        end_s, end = self.samples[-1]
        for n, typist in enumerate(self.typists):
            peak = max(sizes[n][0] + sizes[n][1] for _, sizes in self.samples)
            line = (f"{typist.name}: at the end ({end_s / 60:.1f} min) {end[n][0]:.1f} MB private, "
                    f"{end[n][1]:.1f} MB mapped, {sum(end[n]):.1f} MB resident (most {peak:.1f})")
            if settled is not None and settled is not self.samples[-1]:
                then = settled[1][n]
                line += (f"; from {settled[0] / 60:.0f} min to the end: {end[n][0] - then[0]:+.1f} MB private, "
                         f"{end[n][1] - then[1]:+.1f} MB mapped")
            print(line)


def host_cpu_s(pid: int) -> float:
    """The host's CPU time so far, user and system, in seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report_paired(typists: list[Typist]) -> None:
    """The paired difference of first characters, more − less (memory on − off, a longer lookahead −
    a shorter), per debounce, over the keystrokes both asked for and saw answered."""
    on, off = sorted(typists, key=lambda typist: -typist.rank)
    for debounce in on.debounces:
        keys = [i for i in on.answered.keys() & off.answered.keys()
                if on.debounces[i % len(on.debounces)] == debounce]
        differences = [on.answered[i] - off.answered[i] for i in sorted(keys)]
        print(f"paired difference, {on.name} − {off.name}, debounce {debounce} ms: ", end="")
        if not differences:
            print("no keystroke needed a new suggestion answered in both")
            continue
        median, low, high = paired_difference(differences)
        slower = sum(d > 0 for d in differences)
        faster = sum(d < 0 for d in differences)
        print(f"n={len(differences)} keystrokes answered in both, median {median:+.1f} ms, "
              f"95 % interval {low:+.1f} … {high:+.1f} ms (bootstrap of the median, {RESAMPLES} resamples); "
              f"{on.name} slower in {slower}, faster in {faster}")


if __name__ == "__main__":
    main()
