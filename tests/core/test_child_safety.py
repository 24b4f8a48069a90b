"""Opening a file runs nothing from its folder, and a secret file's text is never remembered.

The host starts its children (the project's indexing, the corpus n-gram's count) in Neovim's working
directory, often a project a person has just cloned; `python -m` would import that folder's
`shlex.py` or `textgen_core/` first (`serve.child_python`). And the open buffers are remembered for
suggestions in the other buffers: a `.env` or a file the user's globs exclude never is
(`Memories.private`).
"""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO
from tests.core.test_project_memory import make_project
from tests.nvim_harness import wait_for
from textgen_core.serve.child_python import module_command
from textgen_core.serve.memories import Memories, ProjectOptions

# Modules a Python child imports on its way to textgen_core's CLI, planted where it starts.
PLANTED = ("shlex", "json", "argparse", "runpy", "textgen_core/__init__")


def plant(folder, marker):
    """Modules in `folder` that each append their name to `marker` when imported."""
    for name in PLANTED:
        path = folder / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\nraise SystemExit(99)\n")
    return folder


def run_in(folder, command):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_a_child_runs_textgens_modules_not_those_of_its_working_directory(tmp_path):
    marker = tmp_path / "imported.txt"
    folder = plant(tmp_path / "cloned", marker)
    # What the children were started with: the folder's own modules come first.
    assert run_in(folder, [sys.executable, "-m", "textgen_core", "--help"]).returncode == 99 and marker.exists()
    marker.unlink()
    run = run_in(folder, module_command(sys.executable, "textgen_core", "--help"))
    assert run.returncode == 0 and "index" in run.stdout, run.stderr
    assert not marker.exists()


def test_indexing_a_project_opened_from_inside_it_runs_none_of_its_code(tiny_model_dir, tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    root = plant(make_project(tmp_path), marker)
    monkeypatch.chdir(root)                               # Neovim started in the cloned project
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    memories = Memories(lambda tables: None, lambda: str(tiny_model_dir))
    try:
        options = ProjectOptions(cache_dir=str(tmp_path / "cache"))
        memories.buffer_event(1, "enter", str(root / "src" / "handlers.py"), None, options)
        wait_for(lambda: memories.state in ("ready", "failed"), timeout=120, what="the index")
        assert memories.state == "ready", memories.reason
    finally:
        memories.close()
    assert not marker.exists()


SECRET = "".join(f"TOKEN_{i}=qpw_secretvalue_{i}\n" for i in range(50)).encode()


def test_a_secret_or_excluded_buffer_is_never_remembered(tmp_path):
    root = make_project(tmp_path)
    published = []
    memories = Memories(published.append, lambda: "default")
    try:
        options = ProjectOptions(enabled=False, exclude=("notes/*",))
        memories.buffer_event(1, "enter", str(root / ".env"), SECRET, options)
        memories.buffer_event(2, "enter", str(root / "notes" / "todo.txt"), SECRET, options)
        memories.buffer_event(3, "enter", str(root / "src" / "app.py"), b"x = 1\n" * 20, options)
        wait_for(lambda: memories.status()["buffers"]["bytes"] > 0, what="the buffers counted")
        assert [memories.private(b) for b in (1, 2, 3)] == [True, True, False]
        assert memories.status()["buffers"] == {"count": 1, "bytes": 120, "private": 2}
        (table, _), = memories.tables()
        assert table.probs(b"qpw_secretv")[1] == 0                 # not one of its contexts
        # Renamed to a name that is not secret (:saveas), it is remembered; unloaded, forgotten.
        memories.buffer_event(1, "write", str(root / "src" / "settings.py"), SECRET, options)
        assert not memories.private(1)
        wait_for(lambda: memories.status()["buffers"]["count"] == 2, what="the renamed buffer counted")
        memories.buffer_event(2, "unload", None, None, options)
        assert memories.status()["buffers"]["private"] == 0
        # A buffer whose text holds a private key is private whatever its name (none here), until the
        # key is gone from it; a write that sends no text (the host has it) keeps it so.
        key = b"-----BEGIN PRIVATE KEY-----\n" + b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIB" * 2 + b"\n"
        memories.buffer_event(4, "leave", None, b"notes\n" + key, options)
        assert memories.private(4)
        memories.buffer_event(4, "write", str(root / "notes.md"), None, options)
        assert memories.private(4)
        memories.buffer_event(4, "leave", str(root / "notes.md"), b"notes\n", options)
        assert not memories.private(4)
    finally:
        memories.close()


def test_a_file_in_no_project_is_served_without_the_last_projects_memory(tiny_model_dir, tmp_path, monkeypatch):
    """Entering a file outside every project leaves the buffers alone as memory (the project of the
    buffer before it is no longer served), and its own project comes back on entering it again."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    root = make_project(tmp_path)
    loose = tmp_path / "loose" / "diary.py"
    loose.parent.mkdir()
    loose.write_text("notes = 1\n")
    published = []
    memories = Memories(published.append, lambda: str(tiny_model_dir))
    try:
        options = ProjectOptions(cache_dir=str(tmp_path / "cache"))
        memories.buffer_event(1, "enter", str(root / "src" / "handlers.py"), None, options)
        wait_for(lambda: memories.state == "ready", timeout=120, what="the index")
        memories.buffer_event(2, "enter", str(loose), None, options)
        assert memories.root is None and memories.status()["project"] is None and published[-1] == []
        memories.buffer_event(1, "enter", str(root / "src" / "handlers.py"), None, options)
        assert memories.root == root.resolve() and memories.state == "ready"          # from the cache at once
    finally:
        memories.close()


def test_project_options_changed_after_loading_hold_at_the_next_event(tiny_model_dir, tmp_path, monkeypatch):
    """`g:textgen.project` set after the plugin loaded: at the next buffer event the project is served
    by an index built with the new globs (the old one dropped at once, not at the next write), and an
    open buffer whose file the globs now name is forgotten."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    root = make_project(tmp_path, {"notes.py": SECRET.decode()})
    memories = Memories(lambda tables: None, lambda: str(tiny_model_dir))
    try:
        options = ProjectOptions(cache_dir=str(tmp_path / "cache"))
        memories.buffer_event(1, "enter", str(root / "notes.py"), SECRET, options)
        memories.buffer_event(2, "enter", str(root / "src" / "handlers.py"), None, options)
        wait_for(lambda: memories.state == "ready" and memories.status()["buffers"]["count"] == 1, timeout=120,
                 what="the index and the buffers")
        assert "notes.py" in memories.cached.stamps
        excluded = ProjectOptions(exclude=("notes.py",), cache_dir=options.cache_dir)
        memories.buffer_event(2, "leave", str(root / "src" / "handlers.py"), None, excluded)
        assert memories.cached is None or "notes.py" not in memories.cached.stamps     # dropped at once
        assert memories.private(1) and memories.status()["buffers"]["private"] == 1
        wait_for(lambda: memories.state == "ready", timeout=120, what="the index with the new globs")
        assert "notes.py" not in memories.cached.stamps
        wait_for(lambda: memories.status()["buffers"]["count"] == 0, what="the buffer forgotten")
    finally:
        memories.close()


def test_a_project_entered_while_another_is_indexed_is_indexed_after_it(tiny_model_dir, tmp_path, monkeypatch):
    """One index run at a time: a project entered while the last one's run goes on is indexed when
    that run ends (the request was dropped with the old project's results, and the new one stayed
    "none" until a write); entering it with changed options indexes nothing for the old project."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    first = make_project(tmp_path / "one")
    second = make_project(tmp_path / "two")
    memories = Memories(lambda tables: None, lambda: str(tiny_model_dir))
    try:
        options = ProjectOptions(cache_dir=str(tmp_path / "cache"))
        memories.buffer_event(1, "enter", str(first / "src" / "handlers.py"), None, options)
        assert memories.state == "indexing"
        changed = ProjectOptions(max_mb=16, cache_dir=options.cache_dir)
        memories.buffer_event(2, "enter", str(second / "src" / "handlers.py"), None, changed)
        assert memories.root == second.resolve()
        wait_for(lambda: memories.state == "ready", timeout=120, what="the second project's index")
        assert memories.root == second.resolve() and memories.cached.settings.max_total_bytes == 16 << 20
    finally:
        memories.close()
