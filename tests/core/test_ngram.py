"""The corpus n-gram (`textgen_core.memory.ngram`, `textgen ngram`): counts that a slow reference agrees
with, a table file that is data only, and a model that completes what its corpus says."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, TINY_TEXT
from tests.core.test_cli import textgen
from textgen_core import load_model
from textgen_core.memory import ngram, table_blocks
from textgen_core.memory.ngram import NgramFileError, build_ngram, load_ngram, save_ngram
from textgen_core.model.files import ModelFileError

CORPUS = TINY_TEXT.encode()[:3000] + "naïve café\n".encode()


def reference_probs(corpus: bytes, history: bytes, orders: tuple[int, ...], min_count: int) -> np.ndarray:
    """Witten–Bell from order 1 up, by counting substrings of `corpus` directly (no hashing)."""
    p = np.bincount(np.frombuffer(corpus, np.uint8), minlength=256) + 1.0
    p /= p.sum()
    for k in orders:
        if len(history) < k:
            break
        context = history[-k:]
        follow = Counter(corpus[i + k] for i in range(len(corpus) - k) if corpus[i:i + k] == context)
        seen = sum(follow.values())
        if seen < min_count:
            break
        counts = np.zeros(256)
        for byte, count in follow.items():
            counts[byte] = count
        p = (counts + len(follow) * p) / (seen + len(follow))
    return p


@pytest.mark.parametrize("min_count", [1, 3])
def test_probabilities_are_the_interpolated_counts_of_the_corpus(min_count):
    orders = (1, 2, 3, 5, 8)
    table = build_ngram(CORPUS, orders=orders, min_count=min_count)
    text = b"\nthe cat sat on the log. def greet(name):\n    return 'hello' caf\xc3\xa9 zebra"
    target, buckets = table.target_probs(text)
    for end in range(1, len(text)):
        probs, bucket = table.probs(text[:end])
        np.testing.assert_allclose(probs, reference_probs(CORPUS, text[:end], orders, min_count), atol=1e-12)
        assert probs.sum() == pytest.approx(1.0)
        assert target[end - 1] == pytest.approx(probs[text[end]], abs=1e-12) and buckets[end - 1] == bucket
    histories = [text[:end] for end in range(1, len(text), 7)] + [b"fox\x01", text]
    fresh = build_ngram(CORPUS, orders=orders, min_count=min_count)
    fresh.prefetch(histories)                                              # all rows at once, then cached
    for history in histories:
        probs, bucket = fresh.probs(history)
        np.testing.assert_allclose(probs, table.probs(history)[0], atol=1e-12)
        assert bucket == table.probs(history)[1]
    assert table.probs(b"the quick brown fox jumps ")[1] == len(orders)     # seen: every order found
    assert table.probs(b"fox\x01")[1] == 0                                  # never seen: byte frequencies


def test_a_memorys_table_buckets_its_contexts_by_how_sure_they_are_and_blanks_apart():
    """`by_confidence`: per order, several bytes seen after the longest context, one byte seen once,
    one byte seen more often, each at a word's end or inside a word; a longest context of blanks alone
    (indentation) is the last bucket. The same probabilities as without, the same buckets one position
    at a time as for a whole text."""
    orders = (1, 2, 4)
    counted = b"    if x:\n        run(a)\n    else:\n        zqx_once()\n        run(b)\n"
    plain = build_ngram(counted, orders=orders, min_count=1)
    table = build_ngram(counted, orders=orders, min_count=1, by_confidence=True)
    assert (plain.buckets, table.buckets) == (4, 1 + 3 * 6 + 1)
    text = b"\n    if y:\n        zqx_once()\n        run(c)\n"
    target, buckets = table.target_probs(text)
    np.testing.assert_array_equal(target, plain.target_probs(text)[0])
    for end in range(1, len(text)):
        probs, bucket = table.probs(text[:end])
        assert buckets[end - 1] == bucket and target[end - 1] == pytest.approx(probs[text[end]], abs=1e-12)
    assert table.probs(b"zqx_o")[1] == 1 + 2 * 6 + 2 * 1 + 1   # order 4 "qx_o": one byte ("n") once, in a word
    assert table.probs(b"   run")[1] == 1 + 2 * 6 + 2 * 2 + 1  # " run": "(", seen twice
    assert table.probs(b"x = run(")[1] == 1 + 2 * 6 + 0        # "run(": "a" and "b", after a word
    assert table.probs(b"x:\n  ")[1] == 1 + 2 * 6 + 2 * 2     # ":\n  ": " " twice, not in a word
    assert table.probs(b"\n        ")[1] == table.buckets - 1  # four blanks: how deep says nothing
    assert table.probs(b"\n  ")[1] == table.buckets - 1        # "  " (order 2), no longer context held
    assert table.probs(b"\x01")[1] == 0


@pytest.mark.parametrize("part_positions", [64, 1000])
def test_counting_in_parts_gives_the_same_table_as_counting_at_once(part_positions):
    """Parts split by runs of the keys' top byte (of at most 64 and 1000 positions here) must join into
    the very arrays one part gives: same contexts in the same order, same bytes, counts and starts."""
    orders = (1, 2, 3, 5, 8)
    for min_count in (1, 2):
        whole = build_ngram(CORPUS * 2, orders=orders, min_count=min_count)
        parted = build_ngram(CORPUS * 2, orders=orders, min_count=min_count, part_positions=part_positions)
        for a, b in zip(whole.tables, parted.tables):
            for name in ("keys", "starts", "next_bytes", "counts"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
                assert getattr(a, name).dtype == getattr(b, name).dtype
    assert build_ngram(b"", orders=orders).contexts == 0


def test_a_table_survives_saving_and_a_bad_file_is_refused_with_its_name(tmp_path):
    table = build_ngram(CORPUS, orders=(1, 2, 4), min_count=2)
    save_ngram(table, tmp_path / "ngram")
    loaded = load_ngram(tmp_path / "ngram")
    assert loaded.orders == (1, 2, 4) and loaded.contexts == table.contexts
    assert isinstance(loaded.tables[0].keys.base, np.memmap)                  # mapped, not read
    np.testing.assert_array_equal(loaded.target_probs(CORPUS[:500])[0], table.target_probs(CORPUS[:500])[0])

    def damaged(name: str, array_name: str, change) -> Path:
        folder = tmp_path / name
        shutil.copytree(tmp_path / "ngram", folder)
        change(folder / f"{array_name}.npy")
        return folder

    refused = {
        damaged("short", "k4.counts", lambda f: np.save(f, np.load(f)[:-1])): "do not agree in length",
        damaged("missing", "k1.next_bytes", lambda f: f.unlink()): "k1.next_bytes.npy: missing",
        damaged("floats", "k2.counts", lambda f: np.save(f, np.load(f).astype(np.float32))): "float32",
        damaged("pickled", "k2.keys", lambda f: np.save(f, np.array([{"code": 1}], dtype=object),
                                                       allow_pickle=True)): "plain arrays of numbers",
        damaged("cut", "k4.keys", lambda f: f.write_bytes(f.read_bytes()[:100])): "unusable",
    }
    for folder, message in refused.items():
        with pytest.raises(NgramFileError, match=message):
            load_ngram(folder)

    def reverse_inner_starts(f: Path) -> None:
        starts = np.load(f)
        np.save(f, np.r_[starts[:1], starts[1:-1][::-1], starts[-1:]].astype(np.uint32))

    backwards = load_ngram(damaged("backwards", "k2.starts", reverse_inner_starts))    # loads: only read where used
    for history in (b"the cat sat on the ", b"def greet(", b"zebra"):
        probs, _ = backwards.probs(history)                                    # no crash, still a distribution
        assert np.all(probs >= 0) and probs.sum() == pytest.approx(1.0)
    with pytest.raises(NgramFileError, match="damaged"):
        backwards.target_probs(CORPUS[:100])


class _CreatesAFile:
    """What unpickling this runs: it creates the file at `path`."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def resident_kb(folder: Path) -> int:
    """This process's resident memory mapped from the files in `folder` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            inside = len(fields) > 5 and fields[5].startswith(str(folder))
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def _use_lookups(way: str, monkeypatch) -> None:
    """Tables loaded from now on look up in C (the compiled helper, where it is built) or in Python."""
    if way == "compiled" and table_blocks.compiled is None:
        pytest.skip("the compiled helper is not built here (test_the_compiled_helper_is_built says why)")
    if way == "python":
        monkeypatch.setattr(table_blocks, "compiled", None)


def _word_text(seed: int, words: int, length: int) -> bytes:
    rng = np.random.default_rng(seed)
    vocabulary = [bytes(rng.integers(97, 123, int(rng.integers(2, 9))).astype(np.uint8)) for _ in range(words)]
    return b" ".join(vocabulary[i] for i in rng.integers(0, words, length))


@pytest.mark.parametrize("way", ["compiled", "python"])
def test_a_loaded_table_predicts_as_counted_reading_blocks_into_a_bounded_cache(tmp_path, monkeypatch, way):
    """A table loaded from its files is looked up a 1 KB block at a time (`table_blocks`, or its
    compiled helper), not through its mapped pages: the same predictions as the table counted in
    memory, contexts in every block and across their ends, with none of its files resident in this
    process and the cache of blocks within its bound (the Python one made small here so that it
    fills and drops blocks; the compiled one is direct-mapped, a block per slot)."""
    _use_lookups(way, monkeypatch)
    text = _word_text(0, 400, 20000)
    counted = build_ngram(text, min_count=2)
    save_ngram(counted, tmp_path / "ngram")
    monkeypatch.setattr(table_blocks.BLOCKS, "size", 64)
    loaded = load_ngram(tmp_path / "ngram")
    assert max(len(t.keys) for t in loaded.tables) > 20 * table_blocks.BLOCK_BYTES // 4      # many blocks
    histories = [text[i - 16:i] for i in range(16, len(text), 29)] + [b"qqqqqqqqqqqqqqqq", b"", b"a"]
    for history in histories:
        (mine, my_bucket), (theirs, their_bucket) = loaded._compute([history])[0], counted._compute([history])[0]
        np.testing.assert_array_equal(mine, theirs)
        assert my_bucket == their_bucket
    assert len(table_blocks.BLOCKS) <= 64
    if way == "compiled":
        assert all(type(t.blocks.lookup).__name__ == "builtin_function_or_method" for t in loaded.tables)
        assert 0 < table_blocks.compiled.cached_blocks() <= table_blocks.compiled.CACHE_BYTES // 1024
    assert resident_kb(tmp_path / "ngram") == 0


def test_the_compiled_prediction_is_the_python_one_bit_for_bit(tmp_path):
    """A keystroke's search asks the tables for hundreds of predictions; where the compiled helper is
    built, each is one call (`_table_lookup.predict`) instead of the Python pass and interpolation:
    the same probabilities to the last bit and the same bucket, for a table counted in memory (the
    open buffers') and one loaded from its files (the corpus', the project's), with and without
    the buckets by confidence, after blanks, inside words, after bytes no context holds, and after
    histories shorter than the longest order."""
    if table_blocks.compiled is None:
        pytest.skip("the compiled helper is not built here (test_the_compiled_helper_is_built says why)")
    text = _word_text(5, 300, 12000) + b"\n        indented  x\n" + "naïve café\n".encode()
    counted = build_ngram(text, min_count=1, by_confidence=True)
    save_ngram(counted, tmp_path / "ngram")
    loaded = load_ngram(tmp_path / "ngram")
    histories = ([text[max(0, i - 20):i] for i in range(0, len(text), 13)]
                 + [b"", b"a", b"        ", b"x\n        ", "caf".encode(), bytes(range(240, 256)), b"\x00" * 30])
    for table in (counted, loaded, loaded.with_confidence(), build_ngram(text, min_count=2)):
        assert ngram.compiled_tables(table.tables) is not None
        compiled = [table._compute([history])[0] for history in histories]
        table._compiled = None                                      # the Python path from here on
        python = [table._compute([history])[0] for history in histories]
        for (mine, my_bucket), (theirs, their_bucket) in zip(compiled, python):
            np.testing.assert_array_equal(mine, theirs)
            assert my_bucket == their_bucket
        buckets = {bucket for _, bucket in python}
        assert 0 in buckets and len(buckets) > 5                                 # none found, and many orders
        assert not table.by_confidence or table.buckets - 1 in buckets          # blanks alone
    with pytest.raises(ValueError, match="one start more"):
        table_blocks.compiled.Arrays(np.zeros(3, np.uint32), np.zeros(3, np.uint32), np.zeros(0, np.uint8),
                                     np.zeros(0, np.uint16))
    arrays = table_blocks.compiled.Arrays(np.zeros(1, np.uint32), np.array([0, 1], np.uint32), np.zeros(1, np.uint8),
                                          np.zeros(1, np.uint16))
    with pytest.raises(ValueError, match="one start more"):              # a failed init leaves it as it was
        arrays.__init__(np.zeros(1 << 20, np.uint32), np.zeros(2, np.uint32), np.zeros(1, np.uint8),
                        np.zeros(1, np.uint16))
    assert table_blocks.compiled.predict((arrays,), (1,), b"ab", np.full(256, 1 / 256), np.empty(256)) == (0, 0, 0)
    with pytest.raises(ValueError, match="holds no arrays"):
        table_blocks.compiled.predict((table_blocks.compiled.Arrays.__new__(table_blocks.compiled.Arrays),), (1,),
                                      b"ab", np.full(256, 1 / 256), np.empty(256))
    many = build_ngram(text[:3000], orders=tuple(range(1, table_blocks.compiled.MAX_ORDERS + 2)), min_count=1)
    assert ngram.compiled_tables(many.tables) is None                   # more orders than it takes: Python's
    assert many.probs(text[1000:1040])[1] > table_blocks.compiled.MAX_ORDERS
    starts = np.array([0, 5], np.uint32)                                  # bytes past the arrays' end
    key = (((1 + 1) * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)) >> 32                     # the context b"\x01"
    damaged = table_blocks.compiled.Arrays(np.array([key], np.uint32), starts, np.zeros(2, np.uint8),
                                           np.zeros(2, np.uint16))
    with pytest.raises(ValueError, match="past its bytes"):
        table_blocks.compiled.predict((damaged,), (1,), b"\x01", np.full(256, 1 / 256), np.empty(256))


def test_a_helper_built_before_it_could_predict_leaves_the_predictions_to_python(monkeypatch):
    """A `.venv` whose helper was built by an earlier version (lookups only, no `predict`) still
    serves: the predictions run in Python, the same as the helper's would be."""
    text = _word_text(6, 200, 6000)
    histories = [text[max(0, i - 16):i] for i in range(0, len(text), 31)]
    expected = [build_ngram(text, min_count=1)._compute([history])[0] for history in histories]

    class LookupsOnly:                    # what the helper offered before `predict`
        Table = getattr(table_blocks.compiled, "Table", None)

    monkeypatch.setattr(table_blocks, "compiled", LookupsOnly)
    table = build_ngram(text, min_count=1)
    assert ngram.compiled_tables(table.tables) is None
    for history, (theirs, their_bucket) in zip(histories, expected):
        mine, my_bucket = table._compute([history])[0]
        np.testing.assert_array_equal(mine, theirs)
        assert my_bucket == their_bucket


@pytest.mark.parametrize("way", ["compiled", "python"])
def test_a_table_file_cut_short_after_loading_is_an_error_not_a_read_past_its_end(tmp_path, monkeypatch, way):
    """The files are data: a table replaced or cut under a running editor makes its lookups fail
    with OSError (which the engine reports), in C as in Python, and every lookup of a context whose
    bytes are still there answers as before."""
    _use_lookups(way, monkeypatch)
    text = _word_text(3, 300, 12000)
    counted = build_ngram(text, orders=(1, 2, 3, 4), min_count=1)
    save_ngram(counted, tmp_path / "ngram")
    loaded = load_ngram(tmp_path / "ngram")
    reference = counted.tables[-1]
    lookup = loaded.tables[-1].blocks.lookup       # (the loaded table's mapped arrays are cut too: not shown)
    path = tmp_path / "ngram" / f"k{reference.order}.next_bytes.npy"
    keep = path.stat().st_size - len(reference.next_bytes) // 2      # the header and half the bytes
    with open(path, "r+b") as f:
        f.truncate(keep)
    cut, whole, block = 0, 0, table_blocks.BLOCK_BYTES                # next_bytes: one byte each
    for i in range(0, len(reference.keys), 7):
        lo, hi = int(reference.starts[i]), int(reference.starts[i + 1])
        if ((hi - 1) // block + 1) * block <= len(reference.next_bytes) // 2:     # its blocks all there
            whole += 1
            key = int(reference.keys[i])
            assert lookup(key) == reference.lookup(key)
        elif lo >= len(reference.next_bytes) // 2 + block:
            cut += 1
            with pytest.raises(OSError, match="ended early|past its arrays"):
                lookup(int(reference.keys[i]))
    assert cut > 10 and whole > 10
    with pytest.raises(OSError):                   # a whole prediction (in C: `predict`) as a lookup
        for i in range(reference.order, len(text)):
            loaded._compute([text[i - reference.order:i]])


def test_the_compiled_helper_is_built_where_there_is_a_c_compiler():
    """`pip install` (make install) builds the n-gram lookup helper where gcc and the Python headers
    are there; without them it goes on, and the lookups run in Python (TEXTGEN_PURE_PYTHON=1 chooses
    that too)."""
    import sysconfig

    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if shutil.which("gcc") and headers.is_file():
        assert table_blocks.compiled is not None, "make install should have built textgen_core/memory/_table_lookup"
    code = "from textgen_core.memory import table_blocks; print(table_blocks.compiled is None)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "TEXTGEN_PURE_PYTHON": "1"})
    assert run.stdout.strip() == "True", run.stderr


@pytest.mark.parametrize("index", ["as saved", "missing", "wrong keys", "too long", "pickled"])
def test_the_block_index_saved_with_a_table_is_used_where_it_fits_the_keys_and_rebuilt_where_not(tmp_path, index):
    """A saved table carries the first key of each block of its keys (`k{k}.block_keys.npy`), so that
    loading need not read the keys (244 ms from a cold disk for the default model's); a table
    without one (written before), or with one that does not fit its keys, is indexed from the keys:
    the same predictions either way."""
    rng = np.random.default_rng(1)
    words = [bytes(rng.integers(97, 123, int(rng.integers(2, 9))).astype(np.uint8)) for _ in range(300)]
    text = b" ".join(words[i] for i in rng.integers(0, 300, 12000))
    counted = build_ngram(text, min_count=1)
    folder = tmp_path / "ngram"
    save_ngram(counted, folder)
    per_block = table_blocks.BLOCK_BYTES // 4
    for t in counted.tables:
        np.testing.assert_array_equal(np.load(folder / f"k{t.order}.block_keys.npy"), t.keys[::per_block])
    for t in counted.tables:
        path = folder / f"k{t.order}.block_keys.npy"
        if index == "missing":
            path.unlink()
        elif index == "wrong keys":
            np.save(path, np.load(path) + np.uint32(1))
        elif index == "too long":
            np.save(path, np.append(np.load(path), np.uint32(2**32 - 1)))
        elif index == "pickled":
            np.save(path, np.array([object()], dtype=object), allow_pickle=True)
    loaded = load_ngram(folder)
    histories = [text[i - 16:i] for i in range(16, len(text), 23)]
    for history in histories:
        (mine, my_bucket), (theirs, their_bucket) = loaded._compute([history])[0], counted._compute([history])[0]
        np.testing.assert_array_equal(mine, theirs)
        assert my_bucket == their_bucket


@pytest.mark.parametrize("array_name", ["orders", "unigram", "min_count"])
def test_a_pickled_array_that_is_read_not_mapped_is_refused_and_never_run(tmp_path, array_name):
    """orders, unigram and min_count are read into memory rather than mapped (numpy refuses to map
    an object array whatever `allow_pickle` says): only the loader's own refusal guards them."""
    save_ngram(build_ngram(CORPUS, orders=(1, 2), min_count=1), tmp_path / "ngram")
    marker = tmp_path / "unpickled"
    payload = np.empty(1 if array_name != "min_count" else (), dtype=object)
    payload.fill(_CreatesAFile(marker))
    np.save(tmp_path / "ngram" / f"{array_name}.npy", payload, allow_pickle=True)
    np.load(tmp_path / "ngram" / f"{array_name}.npy", allow_pickle=True)      # the payload works:
    assert marker.exists()
    marker.unlink()
    with pytest.raises(NgramFileError, match=f"{array_name}.npy"):
        load_ngram(tmp_path / "ngram")
    assert not marker.exists()


PHRASE = "vim.api.nvim_buf_set_extmark(buf, namespace, row, col, opts)\n"
CORPUS_TEXT = TINY_TEXT + "".join(f"local mark{i} = {PHRASE}" for i in range(40))     # the tail fits the weights


def test_a_model_given_an_ngram_completes_what_its_corpus_says(tiny_model_dir, tmp_path):
    corpus = tmp_path / "plugin.lua"
    corpus.write_text(CORPUS_TEXT)
    run = textgen("ngram", tiny_model_dir, corpus, "--out", tmp_path / "with-ngram")
    assert run.returncode == 0, run.stderr
    assert "contexts counted" in run.stdout and "with it" in run.stdout

    model, plain = load_model(tmp_path / "with-ngram"), load_model(tiny_model_dir)
    assert model.ngram is not None and plain.ngram is None
    assert len(model.mixer.ngram_weights) == len(model.ngram.orders) + 1
    assert model.with_weights(model.weights).mixer.ngram is model.ngram     # learning keeps it
    held_out = "the dog sat on the log.\n" + PHRASE
    assert model.bits_per_char(held_out) < plain.bits_per_char(held_out) - 0.5
    assert model.complete("the cat sat.\nvim.api.nvim_buf_se", max_chars=20).startswith("t_extmark(buf")
    assert not plain.complete("the cat sat.\nvim.api.nvim_buf_se", max_chars=20).startswith("t_extmark(buf")

    config = json.loads((tmp_path / "with-ngram" / "config.json").read_text())
    assert config["ngram"]["corpus"]["file_count"] == 1 and config["ngram"]["contexts"] == model.ngram.contexts
    assert config["match"]["with_ngram"]["ngram_weights"] == list(model.mixer.ngram_weights)
    assert config["metrics"]["val_bpc_with_ngram"] < config["metrics"]["val_bpc_with_match"]
    shutil.rmtree(tmp_path / "with-ngram" / "ngram")                     # not built yet: the other weights
    assert load_model(tmp_path / "with-ngram").mixer.weights == tuple(config["match"]["weights"])


def test_greedy_decoding_picks_the_argmax_of_the_whole_mixture(tiny_model_dir, tmp_path):
    from textgen_core.decode.steps import RowMemory, _greedy, mixed_log_probs

    corpus = tmp_path / "plugin.lua"
    corpus.write_text(CORPUS_TEXT)
    assert textgen("ngram", tiny_model_dir, corpus, "--out", tmp_path / "with-ngram").returncode == 0
    model = load_model(tmp_path / "with-ngram")
    text = ("the cat sat on the mat. local mark = vim.api.nvim_buf_set_extmark(buf, namespace, row"
            " the quick brown fox ").encode()
    for end in range(1, len(text)):
        memory = RowMemory(text[:end])
        logits, _ = model.prime(text[:end])
        assert _greedy(logits, model.mixer, memory) == int(mixed_log_probs(logits, model.mixer, memory).argmax())


def test_ngram_fit_on_fits_the_weights_on_other_files_and_counts_only_its_own(tiny_model_dir, tmp_path):
    """`textgen ngram MODEL FILES --fit-on OTHERS` (make default-model: a table of the text the editor
    can count, weights for every kind the model serves): the table holds FILES alone, and the weights
    are fitted on the tails of OTHERS, taken from files spread over the list."""
    from textgen_core.train.held_out import TrainingText, spread_sample

    corpus = tmp_path / "plugin.lua"
    corpus.write_text(CORPUS_TEXT)
    rng = np.random.default_rng(5)
    others = []
    for i in range(12):
        path = tmp_path / f"other{i:02d}.txt"
        path.write_bytes(b" ".join(bytes(rng.integers(97, 123, 5).astype(np.uint8)) for _ in range(400)))
        others.append(path)
    assert textgen("ngram", tiny_model_dir, corpus, "--out", tmp_path / "own").returncode == 0
    run = textgen("ngram", tiny_model_dir, corpus, "--out", tmp_path / "fit", "--fit-on", *others)
    assert run.returncode == 0, run.stderr
    own, fit = load_model(tmp_path / "own"), load_model(tmp_path / "fit")
    assert fit.ngram.contexts == own.ngram.contexts
    sample = spread_sample([TrainingText(str(p), p.read_bytes()) for p in others], 0.1)
    assert fit.info.match["fitted_on_bytes"] == len(sample) != own.info.match["fitted_on_bytes"]
    assert fit.info.match["with_ngram"]["ngram_weights"] != own.info.match["with_ngram"]["ngram_weights"]


def test_a_spread_sample_takes_tails_from_across_the_list():
    from textgen_core.train.held_out import TrainingText, spread_sample

    texts = [TrainingText(f"t{i}", bytes([65 + i]) * 9000 + bytes([97 + i]) * 1000) for i in range(20)]
    sample = spread_sample(texts, 0.1, max_bytes=4000, per_text=1000)
    assert sample == b"\n".join(bytes([97 + i]) * 1000 for i in (0, 5, 10, 15))[:4000]   # tails only, spread
    assert spread_sample(texts[:2], 0.1, max_bytes=65536, per_text=600) == b"a" * 600 + b"\n" + b"b" * 600
    assert spread_sample([], 0.1) == b""


def test_fine_tuning_a_model_keeps_its_ngram_and_fits_its_weight_again(tiny_model_dir, tmp_path):
    corpus = tmp_path / "plugin.lua"
    corpus.write_text(CORPUS_TEXT)
    assert textgen("ngram", tiny_model_dir, corpus, "--out", tmp_path / "base").returncode == 0
    notes = tmp_path / "notes.txt"
    notes.write_text(TINY_TEXT)
    run = textgen("train", notes, "--base", tmp_path / "base", "--out", tmp_path / "tuned", "--epochs", 1,
                  "--steps-per-epoch", 5, "--seq-len", 32, "--batch-size", 8)
    assert run.returncode == 0, run.stderr
    tuned = load_model(tmp_path / "tuned")
    assert tuned.ngram is not None and tuned.ngram.contexts == load_model(tmp_path / "base").ngram.contexts
    shared = tmp_path / "tuned" / "ngram" / "k8.keys.npy"
    assert shared.stat().st_ino == (tmp_path / "base" / "ngram" / "k8.keys.npy").stat().st_ino   # linked, not copied
    assert tuned.info.match["fitted_on_bytes"] > 0 and "ngram_weights" in tuned.info.match["with_ngram"]
    assert tuned.info.ngram["corpus"]["file_count"] == 1


def test_the_command_refuses_in_one_line_and_a_broken_table_names_its_file(tiny_model_dir, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    cases = [(("--min-count", 0), "--min-count"), (("--val-fraction", 1), "--val-fraction")]
    for extra, message in cases:
        run = textgen("ngram", tiny_model_dir, corpus, "--out", tmp_path / "out", *extra)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    run = textgen("ngram", tiny_model_dir, tmp_path / "missing.txt", "--out", tmp_path / "out")
    assert run.returncode == 2 and "missing.txt" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()

    assert textgen("ngram", tiny_model_dir, corpus, "--out", tmp_path / "model").returncode == 0
    (tmp_path / "model" / "ngram" / "unigram.npy").write_bytes(b"not an array")
    with pytest.raises(ModelFileError, match="unigram.npy"):
        load_model(tmp_path / "model")
