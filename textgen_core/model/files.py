"""Model folders on disk: `config.json` + `weights.npz` (+ `ngram/`, the corpus n-gram, where a
model has one), written atomically, read as data only.

A model file may come from anywhere, so loading never unpickles (`allow_pickle=False`), checks the
format name and version, and checks every array's shape and values against the config.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from textgen_core.memory.ngram import NGRAM_DIR, NgramFileError, NgramModel, is_table_file, load_ngram, save_ngram
from textgen_core.model.config import FORMAT_NAME, FORMAT_VERSION, ModelConfig, ModelInfo
from textgen_core.model.safe_read import MB, RefusedFile, open_regular, read_npy_header, read_regular
from textgen_core.model.scratch import process_gone

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.npz"

Weights = dict[str, np.ndarray]


class ModelFileError(Exception):
    """A model folder that cannot be used; the message names the file and what is wrong."""


class UnsafeSaveTargetError(ModelFileError):
    """The folder a model was to be saved into holds what is not a model's: it is left as it was."""


# What a model folder holds: saving replaces a folder only when it holds nothing else. Of it, saving
# writes and removes the model's own files alone; its documents (a card, a corpus manifest), which a
# person may have written, are moved into the new folder and never deleted.
MODEL_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE, NGRAM_DIR})
DOCUMENTS = ("MODEL_CARD.md", "CORPUS.tsv")
MODEL_ENTRIES = MODEL_FILES | frozenset(DOCUMENTS)
MAX_CONFIG_BYTES = 1 << 20


def save_model_folder(folder: str | os.PathLike, info: ModelInfo, weights: Weights,
                      dtype: str = "float32", ngram: NgramModel | None = None) -> Path:
    """Write `folder` atomically: a temporary sibling folder is filled, then renamed into place.

    An existing model at `folder` stays intact until the new one is complete. With `ngram`, the
    corpus n-gram table is written beside the weights.
    """
    shown = os.fspath(folder)
    folder = Path(folder).expanduser().resolve()
    _check_weights(info.config, weights, source=str(folder))
    check_save_target(folder, shown)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_save(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-{os.getpid()}-", dir=folder.parent))
    try:
        os.chmod(tmp, _folder_mode(folder, tmp))    # mkdtemp's 0700 is for a scratch folder, not the model's
        # config.json first: from its first file on, a folder a save makes is known as ours (a save
        # killed midway leaves one that the next save may clean; see _remove_model_files).
        with open(tmp / CONFIG_FILE, "w", encoding="utf-8") as f:
            json.dump(info.to_json(), f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        arrays = {name: np.ascontiguousarray(weights[name], dtype=dtype)
                  for name in info.config.weight_shapes()}
        with open(tmp / WEIGHTS_FILE, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        if ngram is not None:
            save_ngram(ngram, tmp / NGRAM_DIR)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)         # made by mkdtemp above: only this save wrote in it
        raise
    return folder


def _folder_mode(folder: Path, tmp: Path) -> int:
    """The permissions of the folder a save makes: those of the model folder it replaces, else those the
    user's umask gives, with the set-group-ID bit a shared parent passed on (kept, as `mkdir` keeps it)."""
    try:
        if folder.is_dir() and not folder.is_symlink():
            return stat.S_IMODE(folder.stat().st_mode)
    except OSError:
        pass
    return (0o777 & ~_current_umask()) | (os.stat(tmp).st_mode & stat.S_ISGID)


def _current_umask() -> int:
    """The process' umask, read without changing it where Linux shows it (`os.umask` can only be read by
    setting it, which another thread's new files would see for that moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace_folder(new: Path, target: Path) -> None:
    """Swap `new` into `target`; the old model's documents are moved into it, and its files removed,
    only after the rename succeeded, and nothing else: a file that appeared there meanwhile stays,
    in `.NAME.old-PID`."""
    if not target.exists():
        os.replace(new, target)
        return
    check_save_target(target)
    if not any(target.iterdir()):
        os.replace(new, target)                 # over an empty folder
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if old.exists():
        _remove_model_files(old)
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    _move_documents(old, target)
    _remove_model_files(old)


def _move_documents(old: Path, new: Path) -> None:
    """Move the documents of the model folder `old` into `new`, where it has none of that name (a
    rename: the same file, never a copy and a delete); what cannot be moved stays in `old`. Only
    from a model folder of ours: a person's folder named like one is left whole."""
    if not _has_our_config(old / CONFIG_FILE):
        return
    for name in DOCUMENTS:
        source = old / name
        try:
            if source.is_file() and not source.is_symlink() and not os.path.lexists(new / name):
                os.replace(source, new / name)
        except OSError:
            pass


def check_save_target(folder: str | os.PathLike, shown: str | None = None) -> None:
    """Refuse, before any work, to save a model where the save would replace what is not a model.

    A missing or empty folder is fine, and so is a model folder of ours that holds only a model's
    files (`MODEL_ENTRIES`, and in ngram/ the files of a table: `ngram.is_table_file`); anything else
    raises UnsafeSaveTargetError naming the folder as the user gave it (`shown`) and what is in the way.
    """
    path = Path(folder).expanduser()
    shown = shown or os.fspath(folder)
    way_out = "give a new or empty folder, or a model name"
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise UnsafeSaveTargetError(f"not saving a model over the file {shown}; {way_out}")
    entries = sorted(os.listdir(path))
    if not entries:
        return
    foreign = [name for name in entries if not _is_model_entry(path, name)]
    if foreign:
        raise UnsafeSaveTargetError(f"not saving a model over {_listed(path, foreign)} in {shown} (a model "
                                    f"folder holds nothing else); {way_out}")
    if not _has_our_config(path / CONFIG_FILE):
        raise UnsafeSaveTargetError(f"not saving a model over {shown}: its {CONFIG_FILE} is not a textgen "
                                    f"model's; {way_out}")


# What `textgen train --backup-dir` writes (Keras' BackupAndRestore and distributed.WorkerBackup),
# in the folder itself or, with several workers, in one subfolder per worker.
BACKUP_FILES = ("latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json",
                "training_metadata.json.bkp", "textgen_seconds.json", "textgen_seconds.json.partial")


def check_backup_target(folder: str | os.PathLike) -> None:
    """Refuse a training backup folder that holds anything but a backup: training removes its backup
    when it ends, and must never take a user's files with it."""
    path = Path(folder).expanduser()
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise UnsafeSaveTargetError(f"not keeping a training backup in the file {folder}; give a new or empty "
                                    f"folder as --backup-dir")

    def is_backup(entry: Path, depth: int) -> bool:
        if entry.is_symlink():
            return False
        if entry.is_dir() and depth == 0:
            return all(is_backup(inner, 1) for inner in entry.iterdir())
        return entry.name in BACKUP_FILES and entry.is_file()

    foreign = sorted(entry.name for entry in path.iterdir() if not is_backup(entry, 0))
    if foreign:
        raise UnsafeSaveTargetError(f"not keeping a training backup beside {_listed(path, foreign)} in {folder} "
                                    f"(it is removed when training ends); give a new or empty folder as --backup-dir")


def remove_backup(folder: str | os.PathLike) -> None:
    """Delete a training backup once training has ended: the files of BACKUP_FILES only, then the
    folder if that emptied it (Keras would remove the whole folder, and with it anything else there)."""
    folder = Path(folder)
    for name in BACKUP_FILES:
        path = folder / name
        if path.is_symlink() or path.is_file():
            path.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass


def _listed(folder: Path, names: list[str]) -> str:
    """"a, b/, c and 4 more": the first names of what is in the way, folders with a slash."""
    shown = ", ".join(name + "/" if (folder / name).is_dir() else name for name in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _is_model_entry(folder: Path, name: str) -> bool:
    path = folder / name
    if path.is_symlink():
        return False
    if name == NGRAM_DIR:
        return path.is_dir() and all(is_table_file(entry) and (path / entry).is_file()
                                     and not (path / entry).is_symlink() for entry in os.listdir(path))
    return name in MODEL_ENTRIES and path.is_file()


def _has_our_config(path: Path) -> bool:
    """Whether `path` is a regular file of at most MAX_CONFIG_BYTES whose JSON names our format."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or os.path.getsize(path) > MAX_CONFIG_BYTES:
            return False
        with open(path, "rb") as f:
            raw = json.loads(f.read(MAX_CONFIG_BYTES + 1))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and raw.get("format") == FORMAT_NAME


def _remove_model_files(folder: Path) -> bool:
    """Delete a model folder of ours: only when its config.json names our format, and then only the
    files a save writes (`MODEL_FILES`; config.json last, so that a delete cut short leaves it
    recognisable), and the folder itself if that emptied it. Anything else in it stays, documents
    included, and so does it."""
    if not _has_our_config(folder / CONFIG_FILE):
        return False
    for name in sorted(MODEL_FILES - {CONFIG_FILE}) + [CONFIG_FILE]:
        path = folder / name
        try:
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif name == NGRAM_DIR and path.is_dir():
                for entry in path.iterdir():
                    if is_table_file(entry.name) and (entry.is_symlink() or entry.is_file()):
                        entry.unlink()
                path.rmdir()                                   # only if that emptied it
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        return False
    return True


def recover_interrupted_save(folder: str | os.PathLike) -> None:
    """Undo what a save killed midway (SIGKILL, power loss) left beside `folder`.

    Killed between its two renames, a save leaves the previous model at `.NAME.old-PID` and nothing
    at NAME: it is put back. The model files in temporary folders of writers that are gone are
    removed. Folders of a writer still running are left alone, and so is anything this user may not
    change, and anything in those folders that a model folder does not hold.
    """
    folder = Path(folder)
    for old in sorted(folder.parent.glob(f".{folder.name}.old-*")):
        if process_gone(old.name.rsplit("-", 1)[-1]):
            try:
                if folder.exists():
                    _move_documents(old, folder)
                    _remove_model_files(old)
                elif _has_our_config(old / CONFIG_FILE):
                    os.replace(old, folder)
            except OSError:
                pass
    for tmp in folder.parent.glob(f".{folder.name}.tmp-*-*"):
        if process_gone(tmp.name[len(f".{folder.name}.tmp-"):].split("-", 1)[0]):
            _remove_model_files(tmp)


def folder_is_present(folder: str | os.PathLike) -> bool:
    """Whether `folder` is a directory, once a save killed midway has been undone."""
    if not os.path.isdir(folder):
        recover_interrupted_save(folder)
    return os.path.isdir(folder)


def read_model_info(folder: str | os.PathLike) -> ModelInfo:
    """Parse and validate `config.json` of a model folder."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder_is_present(folder):
        raise ModelFileError(f"{folder}: not a model folder (it does not exist or is not a directory)")
    try:
        raw = json.loads(read_regular(path, MAX_CONFIG_BYTES, why="that a model's config.json may hold")
                         .decode("utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing; a model folder needs {CONFIG_FILE} and {WEIGHTS_FILE}") from None
    except RefusedFile as exc:
        raise ModelFileError(str(exc)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: not a textgen model (format is "
                             f"{raw.get('format') if isinstance(raw, dict) else raw!r}, expected {FORMAT_NAME!r})")
    version = raw.get("version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported format version {version!r} "
                             f"(this textgen reads version {FORMAT_VERSION})")
    try:
        config = ModelConfig.from_dict(raw.get("architecture") or {})
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad architecture: {exc}") from None
    training = raw.get("training") if isinstance(raw.get("training"), dict) else {}
    metrics = raw.get("metrics") if isinstance(raw.get("metrics"), dict) else {}
    match = raw.get("match") if isinstance(raw.get("match"), dict) else {}
    ngram = raw.get("ngram") if isinstance(raw.get("ngram"), dict) else {}
    return ModelInfo(config=config, training=training, metrics=metrics, name=folder.name, match=match, ngram=ngram)


def load_model_folder(folder: str | os.PathLike) -> tuple[ModelInfo, Weights]:
    """Read a model folder as plain arrays (float32), validated against its config: `weights.npz`
    must be a regular file no larger than the config's arrays can make it, and every array's shape
    and type are read from its header and checked before its data is read."""
    folder = Path(folder)
    info = read_model_info(folder)
    path = folder / WEIGHTS_FILE
    shapes = info.config.weight_shapes()
    most = sum(math.prod(shape) for shape in shapes.values()) * 8 + (len(shapes) + 4) * ARRAY_OVERHEAD_BYTES
    weights: Weights = {}
    try:
        with open_regular(path, most, why="that the architecture in config.json can fill") as f, \
                zipfile.ZipFile(f) as archive:
            for name, shape in shapes.items():
                weights[name] = _read_weight(archive, name, shape, path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing; a model folder needs {CONFIG_FILE} and {WEIGHTS_FILE}") from None
    except RefusedFile as exc:
        raise ModelFileError(str(exc)) from None
    except ModelFileError:
        raise
    except ValueError as exc:              # a header that is not a plain array's (objects included)
        raise ModelFileError(f"{path}: refused ({exc}); model files hold plain arrays only") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, zlib.error, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"{path}: unreadable or truncated ({exc.__class__.__name__}: {exc})") from None
    _check_weights(info.config, weights, source=str(path))
    return info, weights


# weights.npz holds the config's arrays, float64 at most, each with its zip and .npy headers (numpy
# allows a header of up to 10,000 bytes): a larger file is refused unread. An array stored compressed
# may expand MAX_EXPANSION times (and a megabyte): trained weights barely compress, a zip bomb does.
ARRAY_OVERHEAD_BYTES = 16384
MAX_EXPANSION = 64


def _read_weight(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """One array of weights.npz as float32; its header's shape and type are checked before its data
    is decompressed, and no more data than the header says is read."""
    try:
        entry = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise ModelFileError(f"{path}: array {name!r} is missing") from None
    with archive.open(entry) as stream:
        found, fortran, dtype, size = read_npy_header(stream)
        if dtype.kind != "f" or dtype.itemsize > 8:
            raise ModelFileError(f"{path}: array {name!r} has dtype {dtype}, expected floats")
        if found != shape:
            raise ModelFileError(f"{path}: array {name!r} has shape {found}, config.json says {shape}")
        if entry.compress_type != zipfile.ZIP_STORED and size > MAX_EXPANSION * entry.compress_size + MB:
            raise ModelFileError(f"{path}: array {name!r} would expand from {entry.compress_size:,} to {size:,} "
                                 "bytes, as a zip bomb does and weights do not")
        data = stream.read(size)
        if len(data) != size or stream.read(1):
            raise ModelFileError(f"{path}: array {name!r} does not hold the {size:,} bytes its header says")
    array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_weights(config: ModelConfig, weights: Weights, source: str) -> None:
    for name, shape in config.weight_shapes().items():
        if name not in weights:
            raise ModelFileError(f"{source}: array {name!r} is missing")
        array = weights[name]
        if tuple(array.shape) != shape:
            raise ModelFileError(f"{source}: array {name!r} has shape {tuple(array.shape)}, "
                                 f"config.json says {shape}")
        if not np.all(np.isfinite(array)):
            raise ModelFileError(f"{source}: array {name!r} holds NaN or infinite values")


def read_ngram(folder: str | os.PathLike) -> NgramModel | None:
    """The corpus n-gram table of a model folder (`ngram.py`), None where it has none."""
    path = Path(folder) / NGRAM_DIR
    if not path.exists():
        return None
    try:
        return load_ngram(path)
    except NgramFileError as exc:
        raise ModelFileError(str(exc)) from None
