"""Folders a cache writes whole and replaces by renames, and the one rule for removing any of them:
only a folder this cache wrote.

A write goes into a staging folder beside its place (`.<name>.new-<pid>-<ns>`) and is renamed in; the
folder it replaces is first renamed aside (`.<name>.old-<pid>-<ns>`) and then removed. So a reader
sees the old folder or the new one, never half of one, and a host that has the old files mapped
keeps reading them. The project indexes (`project_cache`) and the corpus n-grams (`corpus_ngram`)
are such folders; they differ only in the names below.

A folder counts as ours only if it is a real folder (no link) holding nothing but its description
file and n-gram folders of regular .npy files, and either its description is ours (our format
number) or it is named as a write's staging folder is. Anything else where a folder would go (a
user's files, a link out of the cache, a look-alike with a foreign file in it) is neither moved nor
removed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from textgen_core.model.safe_read import RefusedFile, read_regular


@dataclass(frozen=True)
class CacheFolders:
    """What one cache's folders look like, and how it says that one is not its own."""

    meta: str                       # the description file: project.json, corpus.json
    subfolders: tuple[str, ...]     # the n-gram folders a folder may hold
    format: int                     # the description's "format" number
    names: str                      # a regular expression of the folders' own names
    max_meta_bytes: int
    error: type[Exception]          # raised where a folder that is not ours stands in the way
    not_ours: str                   # "{folder}: " + this, in that error

    def staging(self, folder: Path) -> Path:
        """A new, empty folder beside `folder` to write its next version into."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.parent / f".{folder.name}.new-{os.getpid()}-{time.monotonic_ns()}"
        staging.mkdir()
        return staging

    def replace(self, folder: Path, staging: Path) -> None:
        """Put `staging` in the place of `folder` by renames. A `folder` that is not ours is neither
        moved nor removed: `error`, and the staging folder removed."""
        old = None
        if os.path.lexists(folder):
            if not self.is_ours(folder):
                self.remove_ours(staging)
                raise self.error(f"{folder}: {self.not_ours}")
            old = folder.parent / f".{folder.name}.old-{os.getpid()}-{time.monotonic_ns()}"
            folder.rename(old)
        staging.rename(folder)
        if old is not None:
            self.remove_ours(old)

    def interrupted_writes(self, folder: Path) -> list[Path]:
        """The staging and set-aside folders of `folder` that writes killed before their end left."""
        pattern = re.compile(re.escape(f".{folder.name}.") + r"(new|old)-\d+-\d+")
        return [entry for entry in folder.parent.iterdir() if pattern.fullmatch(entry.name)] \
            if folder.parent.is_dir() else []

    def is_ours(self, folder: Path) -> bool:
        """Whether this cache wrote `folder` (the module's docstring says how that is told)."""
        if folder.is_symlink() or not folder.is_dir():
            return False
        for entry in folder.iterdir():
            if entry.name == self.meta:
                if entry.is_symlink() or not entry.is_file():
                    return False
            elif entry.name in self.subfolders and not entry.is_symlink() and entry.is_dir():
                if any(f.is_symlink() or not f.is_file() or f.suffix != ".npy" for f in entry.iterdir()):
                    return False
            else:
                return False
        if re.fullmatch(rf"\.(?:{self.names})\.(new|old)-\d+-\d+", folder.name):
            return True
        try:
            meta = json.loads(read_regular(folder / self.meta, self.max_meta_bytes, name=str(folder / self.meta),
                                           why=f"the description of {folder}"))
        except (OSError, RefusedFile, ValueError):
            return False
        return isinstance(meta, dict) and meta.get("format") == self.format

    def remove_ours(self, folder: Path) -> bool:
        """Remove `folder` if this cache wrote it (`is_ours`); anything else is left where it is."""
        if not self.is_ours(folder):
            return False
        shutil.rmtree(folder)
        return True
