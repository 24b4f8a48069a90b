"""Which files of a project its memory may read (issue 24): git's files, text only, no secrets, no
links out of the root, bounded; never $HOME or / as a whole."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from textgen_core.memory.project_files import find_project_files, project_root


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.email=a@b", "-c", "user.name=a", *args], check=True,
                   capture_output=True)


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def names(found) -> list[str]:
    return [f.relative for f in found.files]


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    write(root, {".gitignore": "build/\n*.log\n", "src/app.py": "print('app')\n", "src/util.py": "x = 1\n",
                 "README.md": "# readme\n", "build/out.py": "generated = 1\n", "debug.log": "log line\n"})
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    write(root, {"src/new.py": "y = 2\n"})                       # untracked, not ignored
    return root


def test_git_files_are_taken_and_what_git_ignores_is_not(repo):
    found = names(find_project_files(repo))
    assert found == [".gitignore", "README.md", "src/app.py", "src/new.py", "src/util.py"]
    # A folder git ignores, named as the project itself (a virtual environment's package): walked.
    assert names(find_project_files(repo / "build")) == ["out.py"]


def test_secrets_and_the_users_excludes_are_never_read(repo):
    write(repo, {".env": "TOKEN=abc\n", ".env.local": "X=1\n", "keys/id_rsa": "-----BEGIN\n", "certs/site.pem": "x\n",
                 "docs/notes.txt": "notes\n"})
    found = find_project_files(repo, exclude=["docs/*"])
    assert not {".env", ".env.local", "keys/id_rsa", "certs/site.pem", "docs/notes.txt"} & set(names(found))
    assert found.skipped["secret"] == 4 and found.skipped["excluded"] == 1


def test_binary_large_minified_and_lock_files_are_skipped_with_their_reason(repo):
    write(repo, {"image.dat": b"\x89PNG\0\0\0", "big.txt": "a line\n" * 200_000, "bundle.js": "var a=1;" * 400,
                 "package-lock.json": "{}\n", "ok.txt": "fine\n"})
    found = find_project_files(repo)
    assert "ok.txt" in names(found)
    assert not {"image.dat", "big.txt", "bundle.js", "package-lock.json"} & set(names(found))
    assert found.skipped == {"binary": 1, "too large": 1, "generated": 1, "lock or generated file": 1}


def test_links_out_of_the_root_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    write(outside, {"secret.txt": "private\n", "dir/more.txt": "private too\n"})
    root = tmp_path / "project"
    write(root, {"Makefile": "all:\n", "real.txt": "mine\n"})
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside / "dir", root / "linked_dir")
    os.symlink(root / "real.txt", root / "inside_link.txt")
    found = find_project_files(root)
    assert names(found) == ["Makefile", "inside_link.txt", "real.txt"]
    assert found.skipped["link out of the root"] == 2
    assert all(b"private" not in found.read(f) for f in found.files)


def test_the_total_bound_stops_adding_files(repo):
    write(repo, {f"data/{i:02d}.txt": "x" * 1000 + "\n" for i in range(10)})
    found = find_project_files(repo, max_total_bytes=5000)
    assert found.total_bytes <= 5000 and found.skipped["over the total bound"] >= 5


def test_home_and_the_root_folder_are_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for folder in (tmp_path, Path("/")):
        with pytest.raises(ValueError, match="not a project") as refused:
            find_project_files(folder)
        assert "\n" not in str(refused.value)


def test_the_project_root_is_the_git_work_tree_else_a_marker_else_none(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert project_root(repo / "src" / "app.py") == repo.resolve()
    plain = tmp_path / "plain" / "pkg"
    write(plain, {"sub/mod.py": "z = 3\n"})
    (tmp_path / "plain" / "pyproject.toml").write_text("[project]\n")
    assert project_root(plain / "sub" / "mod.py") == (tmp_path / "plain").resolve()
    bare = tmp_path / "bare"
    write(bare, {"a.txt": "a\n"})
    assert project_root(bare / "a.txt") is None                        # never $HOME (tmp_path here)


def test_files_near_the_one_being_edited_come_first(repo):
    write(repo, {"lib/deep/here.py": "a = 1\n", "lib/deep/there.py": "b = 2\n", "lib/top.py": "c = 3\n"})
    found = names(find_project_files(repo, order_near=repo / "lib" / "deep" / "here.py"))
    assert found[:3] == ["lib/deep/here.py", "lib/deep/there.py", "lib/top.py"]


def test_outside_git_the_walk_skips_tool_folders(tmp_path):
    root = tmp_path / "nogit"
    write(root, {"package.json": "{}\n", "index.js": "let a = 1\n", "node_modules/dep/index.js": "dep\n",
                 ".venv/lib/x.py": "venv\n", "__pycache__/x.txt": "cache\n"})
    assert names(find_project_files(root)) == ["index.js", "package.json"]
