"""Quality of a model on held-out text: bits per character beside gzip, bz2 and xz, and the share
of keystrokes a person saves by accepting suggestions word by word.

Keystrokes saved: a simulated person types the text; after each keystroke the engine suggests a
continuation (greedy, up to --max-chars, stopping at the end of the line); the person accepts it
word by word (one keystroke per word: the `accept word` key) as long as the words match what they
were about to type, and otherwise types the next character (one keystroke).

"all text" columns: the same with the mixing weights fitted on all of the model's text, where the
columns before them use those fitted on the text's kind (`textgen fit`), as the editor does by the
buffer's filetype: side by side, in one run.

"learning" columns: the same with the model learning the text as it goes (`textgen_core.memory.adaptation`,
the plugin's default, g:textgen.learn): bits per character with each 32-byte chunk predicted after
learning the chunks before it; keystrokes with the engine learning what was typed while idle
between keystrokes, serving the learned weights from every 64 bytes on.

Usage: python bench/quality.py [--model default] [--bytes 20000] [--typing-bytes N] [--corpus DIR]
                               [--kind KIND] [FILE...]
Without files: the held-out files of each corpus kind (prose, python, lua) that the default model
was not trained on. With --corpus (the folder `make corpus` writes): per kind of the broad corpus,
its held-out packages (packages held out whole: text from packages a model trained on the corpus
never saw), files in the manifest's order.
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import lzma
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textgen_core import load_model  # noqa: E402
from textgen_core.decode import DecodeOptions, accept_words  # noqa: E402
from textgen_core.model.text_kinds import kind_of  # noqa: E402
from textgen_core.serve.engine import Engine  # noqa: E402
from textgen_core.train.corpus import KINDS, select  # noqa: E402
from textgen_core.train.machine import machine_summary  # noqa: E402

CONTEXT_CHARS = 4096          # what the plugin sends: lua/textgen/context.lua MAX_CONTEXT_BYTES
ANSWER_TIMEOUT_S = 30.0


def compressor_bpc(data: bytes) -> dict[str, float]:
    bits = lambda packed: 8 * len(packed) / len(data)  # noqa: E731
    return {"gzip": bits(gzip.compress(data, 9)), "bz2": bits(bz2.compress(data, 9)),
            "xz": bits(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))}


def keystrokes_saved(engine: Engine, text: str, max_chars: int, word_beam: int = DecodeOptions.word_beam,
                     learn: bool = False, prefix: str = "", kind: str | None = None) -> tuple[float, int, int, int]:
    """Simulate typing `text` with word-by-word acceptance, after `prefix` (already there: context
    only); returns (saved fraction, keys, chars, timeouts). A suggestion not answered within
    `ANSWER_TIMEOUT_S` counts as none (the person types the next character). With `learn`, the model
    learns the text typed so far, the engine idle between keystrokes (a person types a few keys a
    second; learning 32 bytes takes about 10 ms). `kind`: the text's, as the editor sends its filetype."""
    options = DecodeOptions(max_chars=max_chars, word_beam=word_beam)
    position, keys, timeouts = 0, 0, 0
    answers: dict[int, str] = {}                 # request id → its final suggestion
    answered = threading.Condition()

    def callback(completion):
        if completion.final:
            with answered:
                answers[completion.request_id] = completion.texts[0] if completion.texts else ""
                answered.notify_all()

    whole, offset, offset_bytes = prefix + text, len(prefix), len(prefix.encode())
    while position < len(text):
        at = offset + position
        request = engine.submit("sim", whole[max(0, at - CONTEXT_CHARS):at], options, callback,
                                end_offset=offset_bytes + len(text[:position].encode()), learn=learn, kind=kind)
        with answered:
            if not answered.wait_for(lambda request=request: request in answers, ANSWER_TIMEOUT_S):
                timeouts += 1
                engine.cancel("sim")                 # a late answer must not stand for a later keystroke
            suggestion = answers.pop(request, "")
            answers.clear()
        if learn and not engine.wait_idle(60):
            raise RuntimeError("the engine did not finish learning within 60 s")
        accepted = 0
        for word in accept_words(suggestion):
            if text.startswith(word, position):
                position += len(word)
                keys += 1
                accepted += 1
            else:
                break
        if accepted == 0:
            position += 1
            keys += 1
    return 1 - keys / len(text), keys, len(text), timeouts


def heldout_texts(limit: int) -> dict[str, bytes]:
    texts = {}
    for kind in KINDS:
        data = b""
        for f in select((kind,), "heldout"):
            data += f.path.read_bytes()
            if len(data) >= limit:
                break
        texts[f"heldout {kind}"] = data[:limit]
    return texts


# The first corpus' kinds (textgen_core.train.corpus) as kinds of text: its prose is Vim's help.
FIRST_CORPUS_KINDS = {"python": "python", "prose": "help", "lua": "lua"}


def text_kind(name: str, corpus: bool, given: str | None) -> str | None:
    """The kind of a held-out text by its name ("heldout go"), or the one given for files."""
    if given is not None or not name.startswith("heldout "):
        return kind_of(given)
    kind = name.split(" ", 1)[1]
    return kind_of(kind if corpus else FIRST_CORPUS_KINDS.get(kind))


def corpus_heldout_texts(folder: Path, limit: int) -> dict[str, bytes]:
    """Per kind of a broad corpus (`make corpus`), the first `limit` bytes of its held-out files."""
    from textgen_core.train.corpus_build import read_manifest

    texts: dict[str, bytes] = {}
    for row in read_manifest(folder):
        if row["split"] == "heldout" and len(texts.get(row["kind"], b"")) < limit:
            texts[row["kind"]] = texts.get(row["kind"], b"") + (folder / row["path"]).read_bytes()
    return {f"heldout {kind}": data[:limit] for kind, data in texts.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*")
    parser.add_argument("--model", default="default")
    parser.add_argument("--bytes", type=int, default=20000, help="bytes per text for bits per character")
    parser.add_argument("--typing-bytes", type=int, help="bytes per text for the typing simulation "
                        "(default: all of --bytes; a file's first few KB are often only its license header)")
    parser.add_argument("--max-chars", type=int, default=24)
    parser.add_argument("--word-beam", type=int, default=DecodeOptions.word_beam,
                        help="width of the next-word search (1: off; default: the plugin's)")
    parser.add_argument("--corpus", type=Path,
                        help="a broad corpus folder (make corpus): its held-out packages, per kind")
    parser.add_argument("--kind", help="the kind of text (or a Neovim filetype) of the FILEs given")
    args = parser.parse_args()
    if args.corpus:
        texts = corpus_heldout_texts(args.corpus, args.bytes)
    else:
        texts = {f: Path(f).read_bytes()[:args.bytes] for f in args.files} if args.files else heldout_texts(args.bytes)
    model = load_model(args.model)
    plain = load_model(args.model, use_match=False)
    print(f"machine: {machine_summary()}")
    print(f"model: {args.model} ({model.config.embed_dim}x{model.config.hidden}x{model.config.layers}, "
          f"val bpc {model.info.val_bpc}); match weights {list(model.mixer.weights)}, "
          f"word weights {list(model.mixer.word_weights)}; weights fitted per kind for "
          f"{', '.join(sorted(model.info.match.get('kinds', {}))) or 'none'}")
    print(f"{'text':<16} {'bytes':>7} {'bpc':>6} {'all text':>9} {'no match':>9} {'learning':>9} {'gzip':>6} "
          f"{'bz2':>6} {'xz':>6}  {'keys saved':>10} {'all text':>9} {'no match':>9} {'learning':>9}")
    engine, plain_engine = Engine(model), Engine(plain)
    try:
        for name, data in texts.items():
            started = time.perf_counter()
            text = data.decode("utf-8", errors="replace")
            kind = text_kind(name, args.corpus is not None, args.kind)
            served = model.for_kind(kind)
            bpc, bpc_all, bpc_plain = served.bits_per_char(data), model.bits_per_char(data), plain.bits_per_char(data)
            bpc_learning = served.bits_per_char(data, learn=True)
            packed = compressor_bpc(data)
            typed = text[:args.typing_bytes] if args.typing_bytes else text
            saved, keys, chars, timeouts = keystrokes_saved(engine, typed, args.max_chars, args.word_beam, kind=kind)
            saved_all, _, _, timeouts_all = (keystrokes_saved(engine, typed, args.max_chars, args.word_beam)
                                             if served is not model else (saved, keys, chars, 0))
            saved_plain, _, _, timeouts_plain = keystrokes_saved(plain_engine, typed, args.max_chars, args.word_beam)
            with closing(Engine(model)) as learning_engine:
                saved_learning, keys_learning, _, timeouts_learning = keystrokes_saved(
                    learning_engine, typed, args.max_chars, args.word_beam, learn=True, kind=kind)
            late = timeouts + timeouts_all + timeouts_plain + timeouts_learning
            print(f"{name:<16} {len(data):>7,} {bpc:6.3f} {bpc_all:9.3f} {bpc_plain:9.3f} {bpc_learning:9.3f} "
                  f"{packed['gzip']:6.3f} {packed['bz2']:6.3f} {packed['xz']:6.3f}  {saved * 100:9.1f}% "
                  f"{saved_all * 100:8.1f}% {saved_plain * 100:8.1f}% {saved_learning * 100:8.1f}%   "
                  f"({served.kind or 'all text'}; {keys} / {keys_learning} keys for {chars} chars, "
                  f"{time.perf_counter() - started:.0f} s"
                  + (f"; {timeouts} / {timeouts_all} / {timeouts_plain} / {timeouts_learning} suggestions over "
                     f"{ANSWER_TIMEOUT_S:.0f} s, counted as none" if late else "") + ")", flush=True)
    finally:
        engine.close()
        plain_engine.close()



if __name__ == "__main__":
    main()
