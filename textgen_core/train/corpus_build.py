"""`make corpus`: the broad corpus, fetched from its recipe and cleaned, with its manifest.

For every package of the recipe (`corpus_sources`), train packages first: its archive fetched (or
found in the download folder), the files its rows ask for read, each kept or refused
(`corpus_clean.Cleaner`, which sees the train files before the held-out ones, so a held-out file that
copies a train file is dropped), and the kept ones written to `OUT/<split>/<kind>/<package>/<path>`.
`OUT/CORPUS.tsv` lists every file kept (kind, split, package, version, path, bytes, sha256): what a
model trained on it saw, to commit with the model. The folder is built beside `OUT` (`OUT.building`)
and renamed in. Only a folder this command wrote is ever removed (`is_ours`: a real folder holding our
marker file, word for word, and nothing but the manifest and the two split folders); anything else at
`OUT` or `OUT.building` (a user's files, a link, a look-alike) is left as it is, and the build stops.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from textgen_core.train.corpus_clean import Cleaner
from textgen_core.train.corpus_sources import RecipeRow, archive_name, decoded, fetch, members

MANIFEST = "CORPUS.tsv"
MANIFEST_HEADER = "kind\tsplit\tpackage\tversion\tpath\tbytes\tsha256"
MARKER = ".textgen-corpus"
MARKER_TEXT = "written whole by `textgen corpus-build` (make corpus), which replaces it whole\n"


@dataclass
class BuildSummary:
    files: Counter = field(default_factory=Counter)         # (split, kind) → files kept
    bytes: Counter = field(default_factory=Counter)         # (split, kind) → bytes kept
    packages: dict = field(default_factory=dict)            # (split, kind) → set of package labels
    refused: Counter = field(default_factory=Counter)       # reason → files

    def lines(self) -> list[str]:
        rows = [f"{split:<8} {kind:<11} {self.files[split, kind]:6d} files {self.bytes[split, kind] / 1e6:8.2f} MB  "
                f"{len(self.packages[split, kind])} packages" for split, kind in sorted(self.files)]
        refused = ", ".join(f"{count} {reason}" for reason, count in self.refused.most_common())
        return rows + [f"refused: {refused or 'none'}"]


def safe_member_path(member: str) -> PurePosixPath | None:
    """An archive member's path made relative, or None where it climbs out (`..`) or is empty."""
    parts = [p for p in PurePosixPath(member).parts if p not in ("/", ".")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


def build_corpus(rows: list[RecipeRow], out: Path, downloads: Path,
                 say: Callable[[str], None] = print) -> BuildSummary:
    """Fetch, clean and write the corpus of `rows` into `out` (see the module's docstring)."""
    out = Path(out)
    building = out.with_name(out.name + ".building")
    for folder in (out, building):
        if os.path.lexists(folder) and not is_ours(folder):
            raise FileExistsError(f"{folder} exists and is not a corpus folder this command wrote; "
                                  "nothing was changed: choose another --out")
    if os.path.lexists(building):
        shutil.rmtree(building)                                         # a build killed before its end
    building.mkdir(parents=True)
    (building / MARKER).write_text(MARKER_TEXT)                          # ours from the start
    (building / MANIFEST).write_text(MANIFEST_HEADER + "\n")
    summary, cleaner, manifest = BuildSummary(), Cleaner(), [MANIFEST_HEADER]
    ordered = sorted(rows, key=lambda row: (row.split != "train", row.package.label))
    archives: dict = {}
    for row in ordered:
        package = row.package
        if package not in archives:
            say(f"fetching {package.label}")
            archives[package] = fetch(package, downloads)
        key = (row.split, row.kind)
        summary.packages.setdefault(key, set()).add(package.label)
        folder = PurePosixPath(row.split, row.kind, archive_name(package))
        row_bytes = 0
        for member, data in members(archives[package]):
            if not row.wants(member):
                continue
            if row.max_bytes is not None and row_bytes >= row.max_bytes:
                summary.refused["over its row's cap"] += 1
                continue
            path, data = decoded(member, data)
            relative = safe_member_path(path)
            if relative is None:
                continue
            kept, reason = cleaner.keep(str(relative), data)
            if kept is None:
                summary.refused[reason] += 1
                continue
            target = building / folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(kept)
            row_bytes += len(kept)
            summary.files[key] += 1
            summary.bytes[key] += len(kept)
            manifest.append("\t".join([row.kind, row.split, package.manifest_name, package.version,
                                       str(folder / relative), str(len(kept)), hashlib.sha256(kept).hexdigest()]))
    (building / MANIFEST).write_text("\n".join(manifest) + "\n")
    if os.path.lexists(out):
        if not is_ours(out):                # (it became something else while the build ran)
            raise FileExistsError(f"{out} is no longer a corpus folder this command wrote; the new one is {building}")
        shutil.rmtree(out)
    building.rename(out)
    return summary


def is_ours(folder: Path) -> bool:
    """Whether `folder` is a corpus folder this command wrote: a real folder holding `MARKER` with
    `MARKER_TEXT`, and besides it only the manifest and the split folders (real folders)."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return False
    marker = folder / MARKER
    try:
        if marker.is_symlink() or not marker.is_file() or marker.read_text() != MARKER_TEXT:
            return False
    except (OSError, UnicodeDecodeError):
        return False
    for entry in folder.iterdir():
        if entry.name in ("train", "heldout"):
            if entry.is_symlink() or not entry.is_dir():
                return False
        elif entry.name == MANIFEST:
            if entry.is_symlink() or not entry.is_file():
                return False
        elif entry.name != MARKER:
            return False
    return True


def read_manifest(out: Path) -> list[dict[str, str]]:
    """The rows of `out/CORPUS.tsv` as dicts keyed by its header."""
    lines = (Path(out) / MANIFEST).read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]
