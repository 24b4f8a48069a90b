"""Project memories on disk: indexed once, mapped when the project is opened again, kept fresh by
counting only the files that changed.

A project's folder in the cache (`<cache>/projects/<16 hex digits of its root's hash>/`) holds
    project.json   the root, the settings it was built with, each file's size and modification
                   time, the mixing weights, when it was built;
    ngram/         the project's n-gram (`ngram.save_ngram`: plain .npy arrays, mapped on loading);
    changes/       an n-gram of the files changed or added since (absent while there are none).
An update counts the changed files alone into `changes/`, work in proportion to them; once they
come to more than `REBUILD_SHARE` of the project, the whole project is counted again. (The counts
of a changed file's old text stay in `ngram/` until then: a few stale contexts weigh little beside
its new text, which `changes/` holds; `textgen index --rebuild`, `:TextGenProject rebuild`, forgets
them at once.) A file that left the project since it was counted (deleted, renamed, ignored by git
since, excluded, a secret by its new name) means the whole project counted again at once: counts
cannot be taken back, and its text must not be suggested any longer.

Every folder is written beside its place and renamed into it, so a reader sees the old index or
the new one, never half of one; a host that has the old files mapped keeps reading them. Only
folders this cache wrote are ever removed (`cache_folders`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from textgen_core.memory.cache_folders import CacheFolders
from textgen_core.memory.ngram import NgramFileError, NgramModel, build_ngram, load_ngram, save_ngram
from textgen_core.memory.project import PROJECT_MIN_COUNT, SEPARATOR, ProjectMemory, build_project_memory, project_texts
from textgen_core.memory.project_files import ProjectFile, ProjectFiles, find_project_files
from textgen_core.model.safe_read import RefusedFile, read_regular

FORMAT = 1
PROJECTS_DIR = "projects"
META = "project.json"
MAX_META_BYTES = 64 << 20              # a file list of 100,000 paths is ~10 MB
# Changed files are counted apart until they are this share of the project's bytes; then all again.
REBUILD_SHARE = 0.25


class ProjectCacheError(ValueError):
    """A cached index that cannot be used; the message names the file and what is wrong."""


FOLDERS = CacheFolders(meta=META, subfolders=("ngram", "changes"), format=FORMAT, names="[0-9a-f]{16}",
                       max_meta_bytes=MAX_META_BYTES, error=ProjectCacheError,
                       not_ours="not a project index of textgen's, left as it is; give textgen another cache folder")


@dataclass(frozen=True)
class Settings:
    """What an index depends on besides the files: another value means another index."""

    max_total_bytes: int
    exclude: tuple[str, ...] = ()
    model: str = "default"

    def as_json(self) -> dict:
        return {"max_total_bytes": self.max_total_bytes, "exclude": list(self.exclude), "model": self.model}


@dataclass(frozen=True)
class CachedProject:
    """A project's index as the cache holds it: the memory (its n-gram mapped), the changed files'
    n-gram (or None), and the stamps (size, modification time) of the files each counted."""

    memory: ProjectMemory
    changes: NgramModel | None
    settings: Settings
    built_at: float
    stamps: dict[str, tuple[int, int]]               # relative path → (size, mtime_ns) as counted
    changed: tuple[str, ...] = ()                    # counted into `changes`
    folder: Path = field(default=Path())

    def tables(self) -> list[tuple[NgramModel, tuple[float, ...]]]:
        """The n-grams to mix in, the project's then its changed files', with the project's weights."""
        found = [(self.memory.ngram, self.memory.weights)]
        return found + [(self.changes, self.memory.weights)] if self.changes is not None else found

    def summary(self) -> dict:
        return {**self.memory.summary(), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.built_at)),
                "changed_files": len(self.changed), "cache": str(self.folder)}


def default_cache_dir() -> Path:
    """Neovim's stdpath('cache') .. '/textgen': $TEXTGEN_CACHE_DIR where the plugin set it (its host and
    training children), else where Neovim puts it (for callers without Neovim)."""
    if os.environ.get("TEXTGEN_CACHE_DIR"):
        return Path(os.environ["TEXTGEN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / os.environ.get("NVIM_APPNAME", "nvim") / "textgen"


def folder_for(cache_dir: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Where the index of the project at `root` lives under `cache_dir`."""
    digest = hashlib.sha256(os.fsencode(Path(root).resolve())).hexdigest()[:16]
    return Path(cache_dir) / PROJECTS_DIR / digest


def stamp(path: Path) -> tuple[int, int]:
    """A file's size and modification time: what tells whether it changed since it was counted."""
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def load_cached(cache_dir: str | os.PathLike, root: str | os.PathLike, settings: Settings) -> CachedProject | None:
    """The project's index if the cache holds one built with `settings`; None if none, or another
    (ProjectCacheError if it is damaged: the caller builds it again)."""
    folder = folder_for(cache_dir, root)
    if not (folder / META).exists():
        return None
    try:
        meta = json.loads(read_regular(folder / META, MAX_META_BYTES, name=str(folder / META), why="a project index"))
    except (OSError, RefusedFile, ValueError) as exc:
        raise ProjectCacheError(f"{folder / META}: unusable ({exc})") from None
    try:
        if meta["format"] != FORMAT or Path(meta["root"]) != Path(root).resolve():
            return None
        saved = Settings(int(meta["settings"]["max_total_bytes"]), tuple(str(g) for g in meta["settings"]["exclude"]),
                         str(meta["settings"]["model"]))
        if saved != settings:
            return None
        weights = tuple(float(w) for w in meta["weights"])
        stamps = {str(rel): (int(size), int(mtime)) for rel, size, mtime in meta["files"]}
        changed = tuple(str(rel) for rel in meta.get("changed", []))
        ngram = load_ngram(folder / "ngram").with_confidence()
        changes = load_ngram(folder / "changes").with_confidence() if changed else None
        if len(weights) == len(ngram.orders) + 1:
            return None                          # an index of a textgen before `by_confidence`: build it again
        if len(weights) != ngram.buckets or not all(0 <= w < 1 for w in weights):
            raise ProjectCacheError(f"{folder / META}: {len(weights)} weights for {ngram.buckets} buckets")
        files = ProjectFiles(Path(root).resolve(), tuple(ProjectFile(Path(root).resolve() / rel, rel, size)
                                                         for rel, (size, _) in stamps.items()),
                             int(meta["bytes"]), {str(k): int(v) for k, v in meta["skipped"].items()})
        memory = ProjectMemory(files.root, files, ngram, weights, int(meta["fitted_on_bytes"]), float(meta["seconds"]))
        return CachedProject(memory, changes, settings, float(meta["built_at"]), stamps, changed, folder)
    except NgramFileError as exc:
        raise ProjectCacheError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ProjectCacheError(f"{folder / META}: unusable ({exc.__class__.__name__}: {exc})") from None


def changed_files(cached: CachedProject, listing: ProjectFiles) -> list[ProjectFile]:
    """The files of `listing` that are new or differ (size, modification time) from what was counted
    into the project's n-gram or its changes."""
    changed = []
    for file in listing.files:
        try:
            now = stamp(file.path)
        except OSError:
            continue
        if cached.stamps.get(file.relative) != now:
            changed.append(file)
    return changed


def left_files(cached: CachedProject, listing: ProjectFiles) -> list[str]:
    """The files counted into the project's index that are no longer its files (deleted, renamed,
    ignored or excluded since), by their paths from the root. One that a new file pushed over the total
    bound is still the project's: its counts stay (else every write in a project over the bound would
    count it all again)."""
    listed = {file.relative for file in listing.files}.union(listing.unread)
    return [relative for relative in cached.stamps if relative not in listed]


@dataclass(frozen=True)
class IndexResult:
    """What `index_project` did: "up to date", "updated" (changed files counted apart) or "built"."""

    action: str
    cached: CachedProject
    seconds: float

    def summary(self) -> dict:
        return {**self.cached.summary(), "action": self.action, "seconds": round(self.seconds, 2)}


def index_project(root: str | os.PathLike, cache_dir: str | os.PathLike, settings: Settings, model=None,
                  rebuild: bool = False) -> IndexResult:
    """Bring the project's index in `cache_dir` up to date: nothing if no file changed since, the
    changed files counted apart if they are few, else the whole project counted again (weights
    fitted with `model`, a TextModel, or the defaults without one); the whole project too where a file
    counted before is no longer one of its files (`left_files`)."""
    started = time.perf_counter()
    root = Path(root).resolve()
    listing = find_project_files(root, exclude=settings.exclude, max_total_bytes=settings.max_total_bytes)
    try:
        cached = None if rebuild else load_cached(cache_dir, root, settings)
    except ProjectCacheError:
        cached = None
    if cached is not None and not left_files(cached, listing):
        changed = changed_files(cached, listing)
        if not changed:
            return IndexResult("up to date", cached, time.perf_counter() - started)
        previously = set(cached.changed)
        pending = [f for f in listing.files if f.relative in previously or f in changed]
        if sum(f.size for f in pending) <= REBUILD_SHARE * max(cached.memory.files.total_bytes, 1):
            stamps = _stamps(pending)                        # before reading: a later write shows as a change
            return IndexResult("updated", _save_changes(cached, listing, pending, stamps),
                               time.perf_counter() - started)
    stamps = _stamps(listing.files)
    memory = build_project_memory(root, model, files=listing)
    return IndexResult("built", _save_whole(cache_dir, memory, settings, stamps), time.perf_counter() - started)


def _stamps(files: Sequence[ProjectFile]) -> dict[str, tuple[int, int]]:
    stamps = {}
    for file in files:
        try:
            stamps[file.relative] = stamp(file.path)
        except OSError:
            continue
    return stamps


def _save_whole(cache_dir: str | os.PathLike, memory: ProjectMemory, settings: Settings,
                stamps: dict[str, tuple[int, int]]) -> CachedProject:
    """Write a whole new index (n-gram and list, no changes) in place of the old one."""
    folder = folder_for(cache_dir, memory.root)
    built_at = time.time()
    staging = FOLDERS.staging(folder)
    save_ngram(memory.ngram, staging / "ngram")
    _write_meta(staging, memory, settings, stamps, (), built_at)
    FOLDERS.replace(folder, staging)
    return load_cached(cache_dir, memory.root, settings) or _unreadable(folder)


def _save_changes(cached: CachedProject, listing: ProjectFiles, pending: list[ProjectFile],
                  pending_stamps: dict[str, tuple[int, int]]) -> CachedProject:
    """Count `pending` (every file changed since the whole count) into a new `changes/` and write the
    index again around the same n-gram (hard-linked, not copied)."""
    texts = project_texts(ProjectFiles(listing.root, tuple(pending), sum(f.size for f in pending), {},
                                       listing.max_file_bytes))
    changes = build_ngram(SEPARATOR.join(texts), min_count=PROJECT_MIN_COUNT, by_confidence=True) if texts else None
    stamps = {**cached.stamps, **pending_stamps}
    staging = FOLDERS.staging(cached.folder)
    save_ngram(cached.memory.ngram, staging / "ngram")
    if changes is not None:
        save_ngram(changes, staging / "changes")
    _write_meta(staging, cached.memory, cached.settings, stamps,
                tuple(f.relative for f in pending) if changes is not None else (), cached.built_at)
    FOLDERS.replace(cached.folder, staging)
    return load_cached(cached.folder.parent.parent, cached.memory.root, cached.settings) or _unreadable(cached.folder)


def _unreadable(folder: Path) -> CachedProject:
    raise ProjectCacheError(f"{folder}: written but not readable back")


def _write_meta(folder: Path, memory: ProjectMemory, settings: Settings, stamps: dict[str, tuple[int, int]],
                changed: tuple[str, ...], built_at: float) -> None:
    meta = {"format": FORMAT, "root": str(memory.root), "settings": settings.as_json(), "built_at": built_at,
            "seconds": memory.seconds, "weights": list(memory.weights), "fitted_on_bytes": memory.fitted_on_bytes,
            "bytes": memory.files.total_bytes, "skipped": memory.files.skipped,
            "files": [[rel, size, mtime] for rel, (size, mtime) in stamps.items()], "changed": list(changed)}
    with open(folder / META, "w", encoding="utf-8") as f:
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())


def clear_cache(cache_dir: str | os.PathLike) -> tuple[int, int]:
    """Remove every project index under `cache_dir` (and folders left by an interrupted write):
    (indexes removed, bytes freed). Only this cache's folders are touched."""
    projects = Path(cache_dir) / PROJECTS_DIR
    if not projects.is_dir() or projects.is_symlink():
        return 0, 0
    removed = freed = 0
    for entry in projects.iterdir():
        if entry.is_symlink() or not entry.is_dir():
            continue
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file() and not f.is_symlink())
        if FOLDERS.remove_ours(entry):
            removed += 0 if entry.name.startswith(".") else 1
            freed += size
    return removed, freed

