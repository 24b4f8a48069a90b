"""Project indexes on disk (`memory.project_cache`, `textgen index`): built once, up to date at no cost,
changed files counted apart, settings and damage handled, and clearing that removes only indexes."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tests.core.test_cli import textgen
from tests.core.test_project_memory import MODULE, NAME, make_project
from textgen_core.memory.project_cache import (
    META,
    ProjectCacheError,
    Settings,
    clear_cache,
    folder_for,
    index_project,
    load_cached,
)

SETTINGS = Settings(32 << 20, (), "default")


def probability_of(cached, text: bytes, after: bytes) -> float:
    """What the index's tables (the project's, then its changes') give `text[0]` after `after`, at most."""
    return max(float(table.probs(after)[0][text[0]]) for table, _ in cached.tables())


def test_an_index_is_reused_and_only_changed_files_are_counted_again(tiny_model, tmp_path):
    root = make_project(tmp_path)
    cache = tmp_path / "cache"
    built = index_project(root, cache, SETTINGS, tiny_model)
    assert built.action == "built" and built.cached.memory.fitted_on_bytes > 0
    assert built.cached.changes is None and built.cached.summary()["files"] == 3
    again = index_project(root, cache, SETTINGS, tiny_model)
    assert again.action == "up to date" and again.cached.built_at == built.cached.built_at
    ngram_files = {p.name: p.stat().st_ino for p in (folder_for(cache, root) / "ngram").iterdir()}

    (root / "src" / "new.py").write_text("".join(f"x = qqv_blorptastic({i})\n" for i in range(100)))
    updated = index_project(root, cache, SETTINGS, tiny_model)
    assert updated.action == "updated" and updated.cached.changed == ("src/new.py",)
    assert probability_of(updated.cached, b"a", b"x = qqv_blorpt") > 0.9      # the new file is counted
    # The project's n-gram is the same files (linked), not counted again.
    assert {p.name: p.stat().st_ino for p in (folder_for(cache, root) / "ngram").iterdir()} == ngram_files
    assert index_project(root, cache, SETTINGS, tiny_model).action == "up to date"

    # A changed file among the changed ones: the changes are counted again from all of them.
    (root / "src" / "new.py").write_text("".join(f"y = qqv_zumbledore({i})\n" for i in range(100)))
    os.utime(root / "src" / "new.py", ns=(1, 1))
    again = index_project(root, cache, SETTINGS, tiny_model)
    assert again.action == "updated" and probability_of(again.cached, b"m", b"y = qqv_zu") > 0.9

    # Changes over a quarter of the project: everything is counted again.
    (root / "src" / "handlers.py").write_text(MODULE.replace(NAME, "zqx_renamed"))
    rebuilt = index_project(root, cache, SETTINGS, tiny_model)
    assert rebuilt.action == "built" and rebuilt.cached.changes is None and rebuilt.cached.changed == ()
    assert len([p for p in (cache / "projects").iterdir()]) == 1        # no staging or old folder left


@pytest.mark.parametrize("how", ["deleted", "renamed to a secret", "ignored by git", "excluded"])
def test_a_file_that_left_the_project_is_forgotten_at_once(tiny_model, tmp_path, how):
    """Counts cannot be taken back: a file counted before that is no longer one of the project's
    files (deleted, `.env.production` now, in .gitignore since, excluded by the user's globs) has the
    whole project counted again, so that its text is suggested no more (a changed file's old counts
    would wait for a quarter of the project to change)."""
    import subprocess

    root = make_project(tmp_path, {"notes.py": "".join(f"TOKEN = 'sk_live_zorblaxhunter{i}'\n" for i in range(50))})
    if how == "ignored by git":
        subprocess.run(["git", "init", "-q", str(root)], check=True)
    cache, settings = tmp_path / "cache", SETTINGS
    built = index_project(root, cache, settings, tiny_model)
    assert probability_of(built.cached, b"l", b"= 'sk_live_zorb") > 0.9
    if how == "deleted":
        (root / "notes.py").unlink()
    elif how == "renamed to a secret":
        (root / "notes.py").rename(root / ".env.production")
    elif how == "ignored by git":
        (root / ".gitignore").write_text("notes.py\n")
    else:
        settings = Settings(SETTINGS.max_total_bytes, ("/notes.py",), SETTINGS.model)
    again = index_project(root, cache, settings, tiny_model)
    assert again.action == "built" and "notes.py" not in again.cached.stamps
    assert probability_of(again.cached, b"l", b"= 'sk_live_zorb") < 0.1
    assert index_project(root, cache, settings, tiny_model).action == "up to date"


def test_a_file_pushed_over_the_total_bound_is_not_taken_for_one_that_left(tiny_model, tmp_path):
    """In a project at its bound, a new file listed before the last one pushes it out unread: it is
    still the project's, so the update counts the new file alone (a whole recount at every write of a
    project over its bound, else)."""
    root = make_project(tmp_path)
    sizes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    settings = Settings(sizes + 100, (), SETTINGS.model)
    cache = tmp_path / "cache"
    built = index_project(root, cache, settings, tiny_model)
    assert built.cached.summary()["files"] == 3
    (root / "src" / "aaa_new.py").write_text("x = qqv_blorptastic(1)\n" * 40)     # listed before more.py
    again = index_project(root, cache, settings, tiny_model)
    assert again.action == "updated" and again.cached.changed == ("src/aaa_new.py",)


def test_a_whole_recount_in_a_folder_of_the_users_removes_only_the_index_it_replaces(tiny_model, tmp_path):
    """The recount a file leaving the project starts replaces the project's index folder: pointed at a
    folder of a user's files as its cache (`--cache-dir`, `g:textgen.project.cache_dir`), it removes the
    old index alone; the user's files beside it, in `projects/`, in a folder named like a write's
    leftovers, and a folder of theirs put where the index was, are all kept."""
    root = make_project(tmp_path, {"notes.py": "TOKEN = 'zorblax'\n" * 20, "old.py": "x = 1\n" * 20})
    cache = tmp_path / "Documents"
    index_project(root, cache, SETTINGS, tiny_model)
    place = folder_for(cache, root)
    users = {cache / "letter.txt": "dear", cache / "projects" / "holiday.txt": "beach",
             cache / "projects" / "photos" / "a.jpg": "jpeg",
             place.parent / f".{place.name}.old-1-2" / "diary.txt": "mine, named like a set-aside index"}
    for path, text in users.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "notes.py").unlink()
    assert index_project(root, cache, SETTINGS, tiny_model).action == "built"      # the whole recount
    assert all(path.read_text() == text for path, text in users.items())
    assert sorted(p.name for p in place.parent.iterdir()) == sorted(
        [place.name, f".{place.name}.old-1-2", "holiday.txt", "photos"])       # no staging or old index left
    # The user moved the index away and put a folder of theirs in its place: never moved nor removed.
    shutil.move(place, tmp_path / "moved-index")
    (place / "plans.txt").parent.mkdir()
    (place / "plans.txt").write_text("my plans")
    (root / "old.py").unlink()
    with pytest.raises(ProjectCacheError, match="not a project index of textgen's"):
        index_project(root, cache, SETTINGS, tiny_model)
    assert (place / "plans.txt").read_text() == "my plans" and os.listdir(place) == ["plans.txt"]
    assert all(path.read_text() == text for path, text in users.items())
    assert sorted(p.name for p in place.parent.iterdir()) == sorted(
        [place.name, f".{place.name}.old-1-2", "holiday.txt", "photos"])


def test_other_settings_or_a_damaged_index_mean_a_new_one(tiny_model, tmp_path):
    root = make_project(tmp_path, {"notes.md": "some notes\n" * 50})
    cache = tmp_path / "cache"
    index_project(root, cache, SETTINGS, tiny_model)
    assert load_cached(cache, root, SETTINGS) is not None
    excluding = Settings(SETTINGS.max_total_bytes, ("*.md",), "default")
    assert load_cached(cache, root, excluding) is None
    result = index_project(root, cache, excluding, tiny_model)
    assert result.action == "built" and result.cached.summary()["files"] == 3

    meta = folder_for(cache, root) / META
    # An index of a textgen before the buckets by confidence (a weight per order): built again.
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "weights": [0.1] * 9}))
    assert load_cached(cache, root, excluding) is None
    assert index_project(root, cache, excluding, tiny_model).action == "built"
    assert load_cached(cache, root, excluding).memory.ngram.by_confidence
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "weights": [0.5, 2.0]}))
    with pytest.raises(ProjectCacheError, match="weights"):
        load_cached(cache, root, excluding)
    (folder_for(cache, root) / "ngram" / "k4.keys.npy").write_bytes(b"not an array")
    with pytest.raises(ProjectCacheError, match="k4.keys.npy"):
        load_cached(cache, root, excluding)
    assert index_project(root, cache, excluding, tiny_model).action == "built"     # damaged: built again
    assert load_cached(cache, root, excluding).memory.ngram.contexts > 0


def test_clearing_removes_indexes_and_nothing_else(tiny_model, tmp_path):
    root = make_project(tmp_path)
    cache = tmp_path / "cache"
    index_project(root, cache, SETTINGS, tiny_model)
    projects = cache / "projects"
    # What is not an index is kept: a user's folder, a folder named like an index holding other files,
    # a link to a folder of the user's.
    (projects / "mine").mkdir()
    (projects / "mine" / "keep.txt").write_text("mine")
    (projects / "also-mine" / "ngram").mkdir(parents=True)             # index-like names, not ours
    (projects / "also-mine" / "ngram" / "data.npy").write_bytes(b"mine")
    lookalike = projects / "0123456789abcdef"
    lookalike.mkdir()
    (lookalike / META).write_text("{}")
    (lookalike / "thesis.tex").write_text("mine")
    outside = tmp_path / "outside"
    (outside / "ngram").mkdir(parents=True)
    (outside / META).write_text("{}")
    (projects / "fedcba9876543210").symlink_to(outside)
    interrupted = projects / ".0000000000000000.new-12-34"
    (interrupted / "ngram").mkdir(parents=True)
    removed, freed = clear_cache(cache)
    assert removed == 1 and freed > 0
    assert sorted(p.name for p in projects.iterdir()) == ["0123456789abcdef", "also-mine", "fedcba9876543210", "mine"]
    assert (projects / "mine" / "keep.txt").exists() and (lookalike / "thesis.tex").exists()
    assert (outside / META).exists() and (outside / "ngram").is_dir()
    assert clear_cache(tmp_path / "nowhere") == (0, 0)


def test_a_users_folder_where_an_index_would_go_is_never_moved_or_removed(tiny_model, tmp_path):
    """The cache folder given (`--cache-dir`) may hold a user's files, even at an index's own path
    or in folders shaped like an index: indexing and clearing leave every one of them as it was."""
    root = make_project(tmp_path)
    cache = tmp_path / "cache"
    place = folder_for(cache, root)
    (place / "ngram").mkdir(parents=True)
    (place / "ngram" / "draft.txt").write_text("mine")
    (place / META).write_text(json.dumps({"format": 1, "mine": True}))
    with pytest.raises(ProjectCacheError, match="not a project index of textgen's"):
        index_project(root, cache, SETTINGS, tiny_model)
    assert (place / "ngram" / "draft.txt").read_text() == "mine"
    assert sorted(p.name for p in (cache / "projects").iterdir()) == [place.name]      # no staging left
    # Shaped like an index, with another project.json (a user's, not our format): kept.
    other = cache / "projects" / "00000000000000aa"
    (other / "ngram").mkdir(parents=True)
    (other / "ngram" / "k1.keys.npy").write_bytes(b"mine")
    (other / META).write_text(json.dumps({"title": "my project notes"}))
    assert clear_cache(cache) == (0, 0)
    assert (place / "ngram" / "draft.txt").exists() and (other / "ngram" / "k1.keys.npy").exists()


def test_the_index_command(tmp_path, tiny_model_dir):
    root = make_project(tmp_path)
    cache = tmp_path / "cache"
    args = ["index", str(root), "--cache-dir", str(cache), "--model", str(tiny_model_dir), "--json"]
    first = textgen(*args)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["action"] == "built" and summary["files"] == 3 and summary["root"] == str(root.resolve())
    assert json.loads(textgen(*args).stdout)["action"] == "up to date"
    assert json.loads(textgen(*args, "--rebuild").stdout)["action"] == "built"
    home = textgen("index", os.path.expanduser("~"), "--cache-dir", str(cache), "--model", str(tiny_model_dir))
    assert home.returncode != 0 and "textgen index:" in home.stderr and len(home.stderr.strip().splitlines()) == 1
    cleared = textgen("index", "--clear", "--cache-dir", str(cache))
    assert cleared.returncode == 0 and cleared.stdout.startswith("removed 1 project index ")
    assert not (cache / "projects" / folder_for(cache, root).name).exists()
    assert np.all([not p.name.endswith(".json") for p in (cache / "projects").rglob("*")])
