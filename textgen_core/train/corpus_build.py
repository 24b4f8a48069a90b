"""`make corpus`: the broad corpus, fetched from its recipe and cleaned, with its manifest.

For every package of the recipe (`corpus_sources`), train packages first: its archive fetched (or
found in the download folder), the files its rows ask for read, each kept or refused
(`corpus_clean.Cleaner`, which sees the train files before the held-out ones, so a held-out file that
copies a train file is dropped), and the kept ones written to `OUT/<split>/<kind>/<package>/<path>`.
`OUT/CORPUS.tsv` lists every file kept (kind, split, package, version, path, bytes, sha256): what a
model trained on it saw, to commit with the model. The folder is built beside `OUT` and renamed in;
an `OUT` that is not a corpus folder (no CORPUS.tsv) is never removed.
"""
from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from textgen_core.train.corpus_clean import Cleaner
from textgen_core.train.corpus_sources import RecipeRow, archive_name, decoded, fetch, members

MANIFEST = "CORPUS.tsv"
MANIFEST_HEADER = "kind\tsplit\tpackage\tversion\tpath\tbytes\tsha256"


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
    if out.exists() and not (out / MANIFEST).is_file():
        raise FileExistsError(f"{out} exists and is not a corpus folder (no {MANIFEST}); choose another --out")
    building = out.with_name(out.name + ".building")
    if building.exists():
        if any(building.iterdir()) and not (building / MANIFEST).is_file():
            raise FileExistsError(f"{building} exists and is not one of ours; remove it or choose another --out")
        shutil.rmtree(building)
    building.mkdir(parents=True)
    (building / MANIFEST).write_text(MANIFEST_HEADER + "\n")            # ours from the start
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
            manifest.append("\t".join([row.kind, row.split, f"{package.source}:{package.name}", package.version,
                                       str(folder / relative), str(len(kept)), hashlib.sha256(kept).hexdigest()]))
    (building / MANIFEST).write_text("\n".join(manifest) + "\n")
    if out.exists():
        shutil.rmtree(out)
    building.rename(out)
    return summary


def read_manifest(out: Path) -> list[dict[str, str]]:
    """The rows of `out/CORPUS.tsv` as dicts keyed by its header."""
    lines = (Path(out) / MANIFEST).read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]
