"""Files from anywhere (a downloaded model folder, a path typed on the command line) are read only
when they are regular files of a size that makes sense: a FIFO never blocks, a device or a huge or
crafted file is refused, in one line, before its data is read."""
from __future__ import annotations

import io
import json
import os
import shutil
import threading
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from tests.conftest import TINY_TEXT
from tests.core.test_cli import textgen
from textgen_core import load_model
from textgen_core.memory.ngram import build_ngram
from textgen_core.model.config import ModelConfig, ModelInfo
from textgen_core.model.files import ModelFileError, load_model_folder, save_model_folder
from textgen_core.model.safe_read import read_npy_header

CONFIG = ModelConfig(embed_dim=4, hidden=8, layers=2)


def _weights(config: ModelConfig = CONFIG) -> dict[str, np.ndarray]:
    return {name: np.full(shape, 0.1, np.float32) for name, shape in config.weight_shapes().items()}


@pytest.fixture
def folder(tmp_path) -> Path:
    """A real model folder (tiny architecture) with a corpus n-gram."""
    table = build_ngram(TINY_TEXT.encode()[:4000])
    return save_model_folder(tmp_path / "m", ModelInfo(CONFIG), _weights(), ngram=table)


def outcome_within(call, fifo: Path | None = None, timeout: float = 20.0) -> BaseException | object:
    """What `call()` returns or raises, waited for up to `timeout` seconds; a call still blocked then
    (on `fifo`, waiting for a writer) fails the test, after a writer came and went so that it ends."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:          # handed to the test
            box["value"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        if fifo is not None:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))    # the reader gets EOF
            except OSError:
                pass
        thread.join(timeout)
        raise AssertionError(f"still blocked after {timeout} s (on {fifo})")
    return box["value"]


@contextmanager
def peak_allocation():
    """The most memory Python and numpy held at once in the block (box['bytes'] afterwards)."""
    box: dict = {}
    tracemalloc.start()
    try:
        yield box
    finally:
        box["bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def _sparse(path: Path, size: int, head: bytes = b"") -> None:
    """A file of `size` bytes that takes no room on disk (but its first bytes)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


@pytest.mark.parametrize("kind, message", [("device", "is a device, not a regular file"),
                                           ("fifo", "is a FIFO (named pipe), not a regular file"),
                                           ("huge", "over the 1 MB that a model's config.json may hold")])
def test_a_config_that_is_a_device_a_fifo_or_huge_is_refused_before_reading(folder, kind, message):
    config = folder / "config.json"
    config.unlink()
    if kind == "device":
        config.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(config)
    else:
        _sparse(config, 2**30, b'{"format": "textgen-char-gru", "pad": "')
    with peak_allocation() as peak:
        refused = outcome_within(lambda: load_model_folder(folder), fifo=config)
    assert isinstance(refused, ModelFileError) and message in str(refused), refused
    assert str(config) in str(refused) and "\n" not in str(refused)
    assert peak["bytes"] < 2**20


def test_weights_that_are_a_fifo_are_refused_without_waiting_for_a_writer(folder):
    weights = folder / "weights.npz"
    weights.unlink()
    os.mkfifo(weights)
    refused = outcome_within(lambda: load_model_folder(folder), fifo=weights)
    assert isinstance(refused, ModelFileError) and f"{weights}: is a FIFO" in str(refused), refused


def _write_npz(path: Path, arrays: dict[str, tuple[tuple[int, ...], np.ndarray | None]]) -> None:
    """An .npz whose members are compressed, each as (shape, values): values None for zeros, written a
    block at a time, so that a member can claim far more data than this test ever holds."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (shape, values) in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                npy_format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
                if values is not None:
                    member.write(np.ascontiguousarray(values, "<f4").tobytes())
                    continue
                left = int(np.prod(shape)) * 4
                block = bytes(2**20)
                while left:
                    member.write(block[:min(left, len(block))])
                    left -= min(left, len(block))


def test_an_array_larger_than_the_config_says_is_refused_before_its_data_is_decompressed(folder):
    arrays = {name: (array.shape, array) for name, array in _weights().items()}
    arrays["embedding"] = ((256, 100_000), None)             # 100 MB of zeros in a 100 KB file
    _write_npz(folder / "weights.npz", arrays)
    with peak_allocation() as peak:
        with pytest.raises(ModelFileError, match=r"'embedding' has shape \(256, 100000\), config.json says \(256, 4\)"):
            load_model_folder(folder)
    assert peak["bytes"] < 8 * 2**20


def test_a_weights_file_larger_than_its_config_can_fill_is_refused_unread(folder):
    _sparse(folder / "weights.npz", 2**30, (folder / "weights.npz").read_bytes())
    with peak_allocation() as peak:
        with pytest.raises(ModelFileError, match="weights.npz: 1 GB, over the .* that the architecture in config.json"):
            load_model_folder(folder)
    assert peak["bytes"] < 2**20


def test_arrays_that_expand_like_a_zip_bomb_are_refused_before_they_are_decompressed(tmp_path):
    big = ModelConfig(embed_dim=16, hidden=1024, layers=1)       # 13 MB of weights, as config.json says
    folder = save_model_folder(tmp_path / "big", ModelInfo(big), _weights(big))
    _write_npz(folder / "weights.npz", {name: (shape, None) for name, shape in big.weight_shapes().items()})
    assert (folder / "weights.npz").stat().st_size < 2**20
    with peak_allocation() as peak:
        with pytest.raises(ModelFileError, match="'gru0/recurrent_kernel' would expand from .* as a zip bomb does"):
            load_model_folder(folder)
    assert peak["bytes"] < 2 * 2**20


def test_ngram_files_that_are_fifos_or_disagree_with_their_headers_are_refused(folder):
    assert load_model(folder).ngram is not None

    fifo_folder = folder.parent / "fifo"
    shutil.copytree(folder, fifo_folder)
    fifo = fifo_folder / "ngram" / "k1.keys.npy"
    fifo.unlink()
    os.mkfifo(fifo)
    refused = outcome_within(lambda: load_model(fifo_folder), fifo=fifo)
    assert isinstance(refused, ModelFileError) and f"{fifo}: is a FIFO" in str(refused), refused

    longer = folder.parent / "longer"
    shutil.copytree(folder, longer)
    with open(longer / "ngram" / "k2.counts.npy", "ab") as f:
        f.write(b"\0" * 10)
    with pytest.raises(ModelFileError, match=r"k2.counts.npy: unusable \(.* bytes where its header says"):
        load_model(longer)

    claimed = folder.parent / "claimed"                # 80 MB of orders, all there (sparse), never read
    shutil.copytree(folder, claimed)
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (10**7,)})
    _sparse(claimed / "ngram" / "orders.npy", len(header.getvalue()) + 8 * 10**7, header.getvalue())
    with peak_allocation() as peak:
        with pytest.raises(ModelFileError, match="orders.npy: 80,000,000 bytes, more than such an array ever holds"):
            load_model(claimed)
    assert peak["bytes"] < 2**20


@pytest.mark.parametrize("command", [["eval", "--model", "no-such-model"], ["ngram", "no-such-model", "--out", "OUT"],
                                     ["train", "--out", "OUT"], ["average", "default", "--out", "OUT", "--fit"]])
def test_the_cli_refuses_pipes_devices_and_files_over_its_limits_before_reading(command, tmp_path):
    command = [tmp_path / "out" if arg == "OUT" else arg for arg in command]
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    run = textgen(*command, fifo, timeout=60)
    assert run.returncode == 2 and f"{fifo}: is a FIFO (named pipe), not a regular file" in run.stderr
    run = textgen(*command, "/dev/zero", timeout=60)
    assert run.returncode == 2 and "/dev/zero: is a device, not a regular file" in run.stderr
    if command[0] in ("eval", "ngram", "average"):
        sparse = tmp_path / "sparse.txt"
        _sparse(sparse, 2**30)
        run = textgen(*command, sparse, timeout=60)
        assert run.returncode == 2 and f"{sparse}: 1 GB, over the" in run.stderr and "head -c" in run.stderr
    assert len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr


def test_the_files_of_eval_together_are_bounded_and_so_is_a_context_on_stdin(tmp_path):
    parts = []
    for i in range(5):                                  # 5 × 15 MB: each under a file's limit, not all together
        parts.append(tmp_path / f"part{i}.txt")
        _sparse(parts[-1], 15 * 2**20)
    run = textgen("eval", "--model", "no-such-model", *parts, timeout=60)
    assert run.returncode == 2 and "the files hold 75 MB in all, over the 64 MB" in run.stderr, run.stderr
    run = textgen("complete", "--model", "no-such-model", "-", stdin="x" * (17 * 2**20), timeout=60)
    assert run.returncode == 2 and "<stdin>: more than the 16 MB" in run.stderr, run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_text_piped_to_train_still_reads_and_a_config_of_our_size_still_loads(folder, tmp_path):
    info = json.loads((folder / "config.json").read_text())
    info["training"] = {"notes": "x" * 500_000}                            # big, but under 1 MB
    (folder / "config.json").write_text(json.dumps(info))
    assert load_model_folder(folder)[0].training["notes"] == "x" * 500_000
    run = textgen("train", "-", "--out", tmp_path / "out", "--epochs", 1, "--steps-per-epoch", 1,
                  "--embed", 4, "--hidden", 8, "--layers", 1, "--seq-len", 16, "--batch-size", 2,
                  stdin=TINY_TEXT, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "out" / "config.json").read_text())["training"]["corpus"]["files"] == \
        [{"name": "<stdin>", "bytes": len(TINY_TEXT.encode())}]



HEADER_ARRAYS = [np.zeros((256, 768), np.float32), np.zeros(5, np.uint16), np.zeros((), np.float64),
                 np.zeros((3, 4), order="F"), np.zeros(0, np.uint8), np.zeros((2, 1, 3), ">i4"), np.zeros(7, np.int8)]


@pytest.mark.parametrize("array", HEADER_ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_an_array_header_reads_as_numpy_reads_it_and_leaves_the_stream_at_the_data(array, version):
    written = io.BytesIO()
    npy_format.write_array(written, array, version=version)
    as_numpy = io.BytesIO(written.getvalue())
    npy_format.read_magic(as_numpy)
    read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    shape, fortran, dtype = read_header(as_numpy)

    stream = io.BytesIO(written.getvalue())
    assert read_npy_header(stream) == (shape, fortran, dtype, array.nbytes)
    assert stream.tell() == as_numpy.tell()


def _npy_with_header(text: str) -> io.BytesIO:
    """A version 1.0 .npy header of `text` as written by hand, padded as numpy pads its own."""
    padded = (text + " " * (127 - (10 + len(text)) % 64) + "\n").encode("latin1")
    return io.BytesIO(npy_format.magic(1, 0) + len(padded).to_bytes(2, "little") + padded)


@pytest.mark.parametrize("header, outcome", [
    ("{'shape': (3,), 'fortran_order': False, 'descr': '<f4'}", ((3,), False, np.dtype("<f4"), 12)),
    ("{'descr':'<f4','fortran_order':False,'shape':(3,2)}", ((3, 2), False, np.dtype("<f4"), 24)),
    ("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", "not plain numbers"),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", "not plain numbers"),
    ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", "not plain numbers"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1), }", r"a shape of \(3, -1\), not sizes"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': __import__('os')}", "malformed"),
])
def test_any_other_header_is_numpy_s_to_read_and_refused_unless_plain_numbers(header, outcome):
    """What numpy does not write itself (other orders or spacing, other types) is read numpy's way,
    never evaluated, and refused unless it is a plain array of numbers."""
    if isinstance(outcome, tuple):
        assert read_npy_header(_npy_with_header(header)) == outcome
    else:
        with pytest.raises(ValueError, match=outcome):
            read_npy_header(_npy_with_header(header))


def test_a_header_cut_short_or_longer_than_numpy_writes_is_refused():
    written = io.BytesIO()
    npy_format.write_array(written, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="cut short"):
        read_npy_header(io.BytesIO(written.getvalue()[:40]))
    huge = npy_format.magic(2, 0) + (2**20).to_bytes(4, "little") + b"{" * 64
    with pytest.raises(ValueError, match="1,048,576 bytes"):
        read_npy_header(io.BytesIO(huge))
