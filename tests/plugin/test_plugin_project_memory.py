"""Project memory in a real Neovim (issue 24): a suggestion drawn from another file of the project,
a written buffer remembered at once and then indexed, the index mapped again from the cache by the
next Neovim, :TextGenProject clear, and secret and git-ignored files never read.

Each test has its own project under tmp_path (a git work tree where git is installed, else a folder
with a pyproject.toml) and the tiny model; the host indexes it with `textgen index` as it would a
user's project, into the Neovim's own stdpath('cache').
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.nvim_harness import ghost, lua, shared_manifest, start_nvim, wait_for

NAME = "zqx_frobnicator"
MODULE = "".join(f"def handler_{i}(request):\n    return {NAME}(request, {i})\n\n" for i in range(120))
# Two files, so that the mixing weights are fitted (one held out, the other counted), as in a real project.
FILES = {"src/handlers.py": MODULE, "src/more.py": MODULE.replace("handler_", "view_")}
PREFIX = "def handler_500(request):\n    return zqx_fro"
SECRET_NAME = "qpw_secretvalue"


def make_project(root, files: dict[str, str]):
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


@pytest.fixture
def editor(tiny_model_dir, tmp_path):
    """A Neovim of its own (its own stdpath('cache')), serving the tiny model."""
    nvim = start_nvim(shared_manifest(), tmp_path / "home", {"model": str(tiny_model_dir), "learn": False})
    yield nvim
    nvim.close()


def memory_status(nvim) -> dict:
    status = lua(nvim, "return require('textgen.host').status()") or {}
    return status.get("memory") or {}


def project_ready(nvim, root) -> dict | None:
    project = memory_status(nvim).get("project") or {}
    return project if project.get("root") == str(root) and project.get("state") == "ready" else None


def wait_ready(nvim, root, **wanted) -> dict:
    """The project's status once its index serves (and has the `wanted` values)."""
    def ready():
        project = project_ready(nvim, root)
        return project if project and all(project.get(k) == v for k, v in wanted.items()) else None
    return wait_for(ready, timeout=120, what=f"the index of {root} ({wanted or 'ready'})")


def suggestion_after(nvim, text: str, expected: str | None = None) -> str:
    """The ghost text after typing `text` on a new last line (in insert mode, then back to normal):
    the first that starts with `expected` (None: the first complete one), or the last one seen."""
    nvim.command("normal! Go")
    nvim.command("setlocal noautoindent nosmartindent indentexpr=")
    nvim.input("A" + text.replace("<", "<lt>"))
    seen = []

    def shown():
        g = ghost(nvim)
        if g is None or lua(nvim, "return require('textgen.suggestion').is_pending(0)"):
            return None
        seen.append(g.text)
        return g.text if expected is None or g.text.startswith(expected) else None
    try:
        return wait_for(shown, timeout=20, what=f"a suggestion after {text!r} starting {expected!r}")
    except AssertionError:
        return seen[-1] if seen else ""
    finally:
        nvim.input("<Esc>")
        wait_for(lambda: ghost(nvim) is None, what="the ghost text gone")


def test_a_suggestion_draws_on_another_file_of_the_project(editor, tmp_path):
    root = make_project(tmp_path / "project", FILES)
    editor.command(f"edit {root / 'src' / 'views.py'}")
    project = wait_ready(editor, root)
    assert project["files"] == 3 and project["from_cache"] is False
    assert suggestion_after(editor, PREFIX, "bnicator(").startswith("bnicator(")
    lines = lua(editor, "return require('textgen').status_lines()")
    assert any(line.startswith("memory: project ") and re.search(r": 3 files, \d+\.\d KB, ready", line)
               for line in lines), lines


def test_without_project_memory_the_other_file_is_not_drawn_on(editor, tmp_path):
    root = make_project(tmp_path / "project", FILES)
    lua(editor, "require('textgen').setup({ project = { enabled = false } })")
    editor.command(f"edit {root / 'src' / 'views.py'}")
    wait_for(lambda: (memory_status(editor).get("project") or {}).get("state") == "off", what="memory off")
    assert not suggestion_after(editor, PREFIX, "bnicator(").startswith("bnicator(")


def test_a_written_buffer_is_remembered_at_once_then_indexed(editor, tmp_path):
    root = make_project(tmp_path / "project", FILES)
    editor.command(f"edit {root / 'src' / 'views.py'}")
    wait_ready(editor, root)
    new = "".join(f"def view_{i}(request):\n    return qqv_blorptastic(request, {i})\n\n" for i in range(60))
    editor.command(f"edit {root / 'src' / 'new_views.py'}")
    editor.current.buffer[:] = new.splitlines()
    editor.command("write")
    other = root / "src" / "other.py"
    editor.command(f"edit {other}")
    # At once: the written buffer is among the open buffers' memory.
    wait_for(lambda: memory_status(editor)["buffers"]["bytes"] >= len(new) - 1, what="the buffers counted")
    assert suggestion_after(editor, "def view_500(request):\n    return qqv_blorpt", "astic(").startswith("astic(")
    # Then the project's index counts the written file apart (only it), and serves it with the buffer gone.
    project = wait_ready(editor, root, changed_files=1)
    assert project["files"] == 4
    editor.command(f"bwipeout! {root / 'src' / 'new_views.py'}")
    wait_for(lambda: memory_status(editor)["buffers"]["bytes"] < len(new), what="the written buffer forgotten")
    editor.command("%delete _")
    assert suggestion_after(editor, "def view_501(request):\n    return qqv_blo", "rptastic(").startswith("rptastic(")


def test_the_cache_survives_a_restart_and_clear_removes_it(tiny_model_dir, tmp_path):
    root = make_project(tmp_path / "project", FILES)
    home = tmp_path / "home"
    first = start_nvim(shared_manifest(), home, {"model": str(tiny_model_dir), "learn": False})
    try:
        first.command("set noswapfile")                  # no swap file for the second Neovim to ask about
        first.command(f"edit {root / 'src' / 'views.py'}")
        built = wait_ready(first, root)
    finally:
        first.close()
    wait_for(lambda: not (home / "nvim.sock").exists() or (home / "nvim.sock").unlink() or True,
             what="the first Neovim's socket gone")
    second = start_nvim(shared_manifest(), home, {"model": str(tiny_model_dir), "learn": False})
    try:
        second.command(f"edit {root / 'src' / 'views.py'}")
        again = wait_ready(second, root)
        assert again["from_cache"] is True and again["built_at"] == built["built_at"]
        assert suggestion_after(second, PREFIX, "bnicator(").startswith("bnicator(")
        cache = tmp_path / "home"
        indexes = list(cache.rglob("project.json"))
        assert len(indexes) == 1
        answer = lua(second, "local r; require('textgen.host').project('clear', function(a) r = a end); return r")
        assert answer["message"].startswith("removed 1 cached project index ")
        assert not list(cache.rglob("project.json"))
    finally:
        second.close()


def test_secret_and_ignored_files_are_never_read(editor, tmp_path):
    secret = "".join(f"key_{i} = {SECRET_NAME}({i})\n" for i in range(100))
    root = make_project(tmp_path / "project", {**FILES, ".env": secret, "id_rsa": secret,
                                               "build/out.py": secret, ".gitignore": "build/\n"})
    if not shutil.which("git"):
        (root / "build" / "out.py").unlink()             # ignoring follows git; the rest needs no git
    editor.command(f"edit {root / 'src' / 'views.py'}")
    project = wait_ready(editor, root)
    assert project["files"] == 4                          # pyproject.toml, .gitignore, handlers.py, more.py
    assert suggestion_after(editor, PREFIX, "bnicator(").startswith("bnicator(")
    assert not suggestion_after(editor, "value = qpw_sec", "retvalue").startswith("retvalue")


def test_children_started_in_a_cloned_project_run_none_of_its_code(editor, tmp_path):
    """Neovim's working directory is the project: the Python jobs textgen starts from Lua (training,
    pip, the check for TensorFlow) import textgen's modules and Python's, never the project's."""
    from tests.core.test_child_safety import plant

    marker = tmp_path / "imported.txt"
    root = plant(make_project(tmp_path / "project", FILES), marker)
    editor.command(f"cd {root}")
    python = lua(editor, "return require('textgen.host').python()")
    code = lua(editor, """
        local child = require('textgen.child')
        local done = {}
        vim.fn.jobstart(child.command(..., 'textgen_core', { '--help' }), {
          env = child.env({ PYTHONPATH = child.pythonpath() }),
          on_exit = function(_, code) done.code = code end,
        })
        _G.textgen_test_launch = done
        require('textgen.train_deps').when_ready(..., function() done.checked = true end)
    """, python)
    assert code is None
    done = wait_for(lambda: lua(editor, "local d = _G.textgen_test_launch; return d.code ~= nil and d.checked and d"),
                    timeout=60, what="the launched job and the check to end")
    assert done["code"] == 0 and not marker.exists()


def test_a_secret_buffer_is_not_suggested_elsewhere_nor_learned(tiny_model_dir, tmp_path):
    """A `.env` open in a buffer: its text is in no memory (its file is never read either), and what
    is typed there is not learned; what is typed in an ordinary file is, in the same Neovim."""
    root = make_project(tmp_path / "project", FILES)
    nvim = start_nvim(shared_manifest(), tmp_path / "home", {"model": str(tiny_model_dir)})
    try:
        secret = "".join(f"key_{i} = {SECRET_NAME}({i})\n" for i in range(60))
        nvim.command(f"edit {root / '.env'}")
        nvim.current.buffer[:] = secret.splitlines()
        nvim.command("write")
        nvim.input("GA")
        nvim.input("\nkey_60 = qpw_secretvalue(60)\nkey_61 = qpw_secretvalue(61)\n")
        nvim.input("<Esc>")
        wait_for(lambda: memory_status(nvim).get("buffers", {}).get("private") == 1, what="the .env private")
        nvim.command(f"edit {root / 'src' / 'views.py'}")
        wait_ready(nvim, root)
        lines = lua(nvim, "return require('textgen').status_lines()")
        assert any("1 private (secret or excluded files" in line for line in lines), lines
        assert not suggestion_after(nvim, "value = qpw_sec", "retvalue").startswith("retvalue")
        engine = lua(nvim, "return require('textgen.host').status().engine") or {}
        assert not engine.get("learned_bytes")
        # The same typing in views.py is learned: the check above could fail.
        nvim.command("normal! G")
        nvim.input("A\n" + secret.replace("qpw_secretvalue", "ordinary_value"))
        wait_for(lambda: (lua(nvim, "return require('textgen.host').status().engine") or {}).get("learned_bytes"),
                 timeout=30, what="what was typed in views.py learned")
        nvim.input("<Esc>")
    finally:
        nvim.close()
