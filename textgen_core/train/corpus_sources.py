"""The broad corpus's sources: the recipe (`corpus_recipe.tsv` and `corpus_recipe_stage4.tsv`), fetching
its pinned packages, and reading the files of their archives.

Each package comes from a registry this project's machines reach, by its exact name and version:
PyPI (the wheel, `pip download`; or the source distribution, `sdist`, from PyPI's JSON, its sha256
checked: sources such as C that no wheel carries, fetched without running their build), npm (the
tarball, from the registry's JSON, its sha512 checked: no npm needed) or Debian (`apt-get download`).
A fetched archive is kept in the download folder and reused; nothing is installed or run from it.
Archives are read as data: zip (wheels), tar (npm and sdists; gzip, xz, bzip2) and Debian's ar with its
`data.tar.*`; only regular files, and none larger than `MAX_MEMBER_BYTES`.
"""
from __future__ import annotations

import base64
import fnmatch
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

RECIPE = Path(__file__).resolve().parent / "corpus_recipe.tsv"
# The rows added for the default model's stage 4, in a file of their own so that the stages before it can list
# the corpus they learned (`textgen corpus --broad DIR --recipe corpus_recipe.tsv`); built together.
RECIPES = (RECIPE, RECIPE.with_name("corpus_recipe_stage4.tsv"))
SOURCES = ("pypi", "sdist", "npm", "deb")
SPLITS = ("train", "heldout")
KINDS = ("python", "javascript", "c", "rust", "go", "shell", "lua", "vimscript", "docs", "prose")
MAX_MEMBER_BYTES = 4 << 20          # a text file larger than this is a data table or generated
FETCH_TIMEOUT_S = 600
NPM_REGISTRY = "https://registry.npmjs.org"
PYPI = "https://pypi.org"
PARTIAL_MARKER = ".textgen-fetch"
PARTIAL_TEXT = "a package being fetched by `textgen corpus-build`; removed if the fetch did not end\n"


class RecipeError(ValueError):
    """A recipe line that cannot be used; the message names the line."""


@dataclass(frozen=True)
class Package:
    source: str
    name: str
    version: str

    @property
    def label(self) -> str:
        """`source:name@version`, as the build reports it."""
        return f"{self.source}:{self.name}@{self.version}"

    @property
    def manifest_name(self) -> str:
        """`source:name`, the manifest's package column (its version is a column of its own)."""
        return f"{self.source}:{self.name}"


@dataclass(frozen=True)
class RecipeRow:
    kind: str
    package: Package
    split: str
    globs: tuple[str, ...]
    max_bytes: int | None = None        # keep at most this much of the row's text (a large package)

    def wants(self, member: str) -> bool:
        return any(fnmatch.fnmatchcase(member, glob) for glob in self.globs)


def read_recipe(*paths: Path) -> list[RecipeRow]:
    """The rows of the recipe files `paths` (default: `RECIPES`, the whole corpus), checked: known kinds,
    sources and splits, one split per package across all the files; a seventh field, where there is
    one, caps the row's text in MB."""
    rows: list[RecipeRow] = []
    splits: dict[str, str] = {}
    for path, number, line in _recipe_lines(paths or RECIPES):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) not in (6, 7) or not all(f.strip() for f in fields):
            raise RecipeError(f"{path}:{number}: expected 6 or 7 tab-separated fields "
                              "(kind, source, name, version, split, files[, max MB])")
        kind, source, name, version, split, files = (f.strip() for f in fields[:6])
        try:
            max_bytes = int(float(fields[6]) * (1 << 20)) if len(fields) == 7 else None
        except ValueError:
            raise RecipeError(f"{path}:{number}: the seventh field is a size in MB, not {fields[6]!r}") from None
        if kind not in KINDS:
            raise RecipeError(f"{path}:{number}: unknown kind {kind!r}; choose from {', '.join(KINDS)}")
        if source not in SOURCES:
            raise RecipeError(f"{path}:{number}: unknown source {source!r}; choose from {', '.join(SOURCES)}")
        if split not in SPLITS:
            raise RecipeError(f"{path}:{number}: split must be train or heldout, not {split!r}")
        package = Package(source, name, version)
        if splits.setdefault(name.lower(), split) != split:        # a wheel and its sdist are one package
            raise RecipeError(f"{path}:{number}: {name} is both train and heldout; "
                              "a package is held out whole, from every source")
        rows.append(RecipeRow(kind, package, split, tuple(g.strip() for g in files.split(",") if g.strip()),
                              max_bytes))
    return rows


def _recipe_lines(paths: tuple[Path, ...]) -> Iterator[tuple[Path, int, str]]:
    """Each line of the recipe files in turn, with its file and line number."""
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            yield path, number, line


def archive_name(package: Package) -> str:
    """The file a fetched package is kept as in the download folder (safe for any name)."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{package.name}-{package.version}")
    return f"{package.source}-{safe}"


def fetch(package: Package, downloads: Path) -> Path:
    """The package's archive in `downloads/<source>-<name>-<version>/`, fetched if not there yet
    (into a `.partial` folder renamed in when complete: after a failed fetch the next run fetches
    again)."""
    folder = Path(downloads).resolve() / archive_name(package)         # absolute: the commands run inside it
    found = _archives(folder)
    if found:
        return found[0]
    partial = folder.with_name(folder.name + ".partial")
    if os.path.lexists(partial):
        _remove_partial(partial)
    partial.mkdir(parents=True)
    (partial / PARTIAL_MARKER).write_text(PARTIAL_TEXT)
    if package.source == "npm":
        _fetch_npm(package, partial)
    elif package.source == "sdist":
        _fetch_sdist(package, partial)
    else:
        command = {
            "pypi": ["pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                     f"{package.name}=={package.version}", "-d", str(partial)],
            "deb": ["apt-get", "download", "-q", f"{package.name}={package.version}"],
        }[package.source]
        run = subprocess.run(command, cwd=partial, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
        if run.returncode != 0:
            reason = (run.stderr or run.stdout).strip().splitlines()[-1:] or [f"exit status {run.returncode}"]
            raise OSError(f"could not fetch {package.label} ({command[0]}: {reason[0]}); is the registry reachable?")
    if len(_archives(partial)) != 1:
        raise OSError(f"could not fetch {package.label}: {len(_archives(partial))} archives came")
    partial.rename(folder)
    return _archives(folder)[0]


def _remove_partial(partial: Path) -> None:
    """Remove a fetch's `.partial` folder that a failed or killed fetch left: only one this module
    made (a real folder holding its marker word for word, and only regular files); anything else
    there is left as it is, and the fetch stops."""
    marker = partial / PARTIAL_MARKER
    try:
        ours = (not partial.is_symlink() and partial.is_dir() and not marker.is_symlink() and marker.is_file()
                and marker.read_text() == PARTIAL_TEXT
                and all(not entry.is_symlink() and entry.is_file() for entry in partial.iterdir()))
    except (OSError, UnicodeDecodeError):
        ours = False
    if not ours:
        raise FileExistsError(f"{partial} exists and is not a fetch of ours; nothing was changed: "
                              "choose another downloads folder")
    for entry in partial.iterdir():
        entry.unlink()
    partial.rmdir()


def _fetch_npm(package: Package, folder: Path) -> None:
    """The npm tarball of `package` into `folder`, checked against the sha512 the registry gives."""
    name = urllib.parse.quote(package.name, safe="@")
    try:
        with urllib.request.urlopen(f"{NPM_REGISTRY}/{name}/{urllib.parse.quote(package.version)}",
                                    timeout=FETCH_TIMEOUT_S) as answer:
            dist = json.load(answer)["dist"]
        with urllib.request.urlopen(dist["tarball"], timeout=FETCH_TIMEOUT_S) as answer:
            data = answer.read()
    except (OSError, ValueError, KeyError) as exc:
        raise OSError(f"could not fetch {package.label} from {NPM_REGISTRY} ({exc}); is the registry reachable?") \
            from None
    algorithm, _, expected = str(dist.get("integrity", "")).partition("-")
    if algorithm != "sha512" or base64.b64decode(expected) != hashlib.sha512(data).digest():
        raise OSError(f"{package.label}: the tarball does not match the registry's sha512; not kept")
    (folder / f"{package.name.split('/')[-1]}-{package.version}.tgz").write_bytes(data)


def _fetch_sdist(package: Package, folder: Path) -> None:
    """The source distribution (`.tar.gz`) of `package` from PyPI into `folder`, checked against the
    sha256 PyPI gives. Only downloaded: `pip download` of an sdist would run its build to learn its
    metadata."""
    try:
        document = f"{PYPI}/pypi/{urllib.parse.quote(package.name)}/json"
        with urllib.request.urlopen(document, timeout=FETCH_TIMEOUT_S) as answer:
            files = json.load(answer)["releases"][package.version]
        sdist = next(f for f in files if f.get("packagetype") == "sdist" and f["filename"].endswith(".tar.gz"))
        with urllib.request.urlopen(urllib.parse.urljoin(document, sdist["url"]), timeout=FETCH_TIMEOUT_S) as answer:
            data = answer.read()
    except StopIteration:
        raise OSError(f"could not fetch {package.label}: PyPI has no .tar.gz source distribution of it") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OSError(f"could not fetch {package.label} from {PYPI} ({exc!r}); is the registry reachable?") \
            from None
    if hashlib.sha256(data).hexdigest() != str(sdist.get("digests", {}).get("sha256", "")):
        raise OSError(f"{package.label}: the source distribution does not match PyPI's sha256; not kept")
    (folder / f"{package.name}-{package.version}.tar.gz").write_bytes(data)


ARCHIVE_SUFFIXES = (".whl", ".tgz", ".tar.gz", ".deb")


def _archives(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES) and p.is_file())


def members(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(path inside the package, bytes) of every regular file of at most `MAX_MEMBER_BYTES`, in the
    archive's order: a wheel, an npm tarball or source distribution, or a Debian package."""
    archive = Path(archive)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                if not info.is_dir() and info.file_size <= MAX_MEMBER_BYTES:
                    yield info.filename, zipped.read(info)
    elif archive.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(archive, "r:*") as tar:
            yield from _tar_members(tar)
    elif archive.suffix == ".deb":
        data = _deb_data(archive.read_bytes(), archive)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            yield from _tar_members(tar)
    else:
        raise ValueError(f"{archive}: not a wheel, a tarball or a Debian package")


def _tar_members(tar: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    for info in tar:
        if info.isreg() and info.size <= MAX_MEMBER_BYTES:
            handle = tar.extractfile(info)
            if handle is not None:
                yield info.name, handle.read()


def _deb_data(content: bytes, archive: Path) -> bytes:
    """The `data.tar.*` member of a Debian package (an `ar` archive)."""
    if not content.startswith(b"!<arch>\n"):
        raise ValueError(f"{archive}: not a Debian package (no ar header)")
    at = 8
    while at + 60 <= len(content):
        header = content[at:at + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip() or 0)
        if name.startswith("data.tar"):
            return content[at + 60:at + 60 + size]
        at += 60 + size + (size % 2)
    raise ValueError(f"{archive}: a Debian package without data.tar")


def decoded(member: str, data: bytes) -> tuple[str, bytes]:
    """A member's path and bytes as the corpus keeps them: a `.gz` file decompressed (its path less
    `.gz`), at most `MAX_MEMBER_BYTES` of it."""
    if member.endswith(".gz"):
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
            return member[:-3], unzipped.read(MAX_MEMBER_BYTES + 1)
    return member, data
