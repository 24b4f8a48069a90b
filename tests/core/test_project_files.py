"""Which files of a project its memory may read (issue 24): git's files, else a walk that skips tool
folders; text a person wrote only; no secrets, no links, bounded; never $HOME or / as a whole."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from textgen_core.memory.project_files import ProjectFile, find_project_files, project_root
from textgen_core.model.safe_read import RefusedFile


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


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """A $HOME of the test's own, above every folder it makes (as a user's projects are)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


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


@pytest.fixture(params=["git", "walk"])
def project(request, tmp_path) -> Path:
    """An empty project, once a git work tree and once a plain folder with a marker."""
    root = tmp_path / "project"
    write(root, {"Makefile": "all:\n"})
    if request.param == "git":
        git(root, "init", "-q")
    return root


def test_git_files_are_taken_and_what_git_ignores_is_not(repo, monkeypatch):
    write(repo, {"node_modules/dep.js": "dep\n"})                # not ignored, but never the project's writing
    monkeypatch.setenv("GIT_DIR", str(repo / "elsewhere"))        # as a git hook running the editor would set
    found = find_project_files(repo)
    assert names(found) == [".gitignore", "README.md", "src/app.py", "src/new.py", "src/util.py"]
    # build/ (a folder counts once) and debug.log
    assert found.skipped == {"ignored by git": 2, "junk folder": 1}
    assert found.total_bytes == sum(f.size for f in found.files) == sum(len(found.read(f)) for f in found.files)
    assert all(f.path == repo / f.relative and f.path.is_absolute() for f in found.files)


def test_git_runs_no_fsmonitor_hook_the_repository_names(repo, tmp_path):
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path / 'hook-ran'}\nprintf '\\0'\n")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(hook))
    assert "src/app.py" in names(find_project_files(repo))
    assert not (tmp_path / "hook-ran").exists()


def test_a_folder_git_ignores_is_walked_when_it_is_the_root(repo):
    # A virtual environment's package (keras in .venv/lib/...) is such a folder.
    assert names(find_project_files(repo / "build")) == ["out.py"]
    # A folder git does not ignore, holding only files it ignores, is git's: nothing in it.
    write(repo, {"logs/today.log": "log\n"})
    assert find_project_files(repo / "logs").skipped == {"ignored by git": 1}


def test_without_git_or_where_it_fails_the_folder_is_walked(repo, tmp_path, monkeypatch):
    # The walk skips the .git and build folders, and honours the root's .gitignore (*.log).
    expected = [".gitignore", "README.md", "src/app.py", "src/new.py", "src/util.py"]
    with monkeypatch.context() as patch:
        patch.setenv("PATH", "")
        found = find_project_files(repo)
    assert names(found) == expected and found.skipped == {"junk folder": 2, "ignored by git": 1}
    (repo / ".git").rename(tmp_path / "moved.git")
    (repo / ".git").write_text(f"gitdir: {tmp_path / 'gone.git'}\n")      # a worktree's link, broken: git fails
    found = find_project_files(repo)
    assert names(found) == expected and found.skipped == {"junk folder": 2, "ignored by git": 1}


def test_secrets_and_the_users_excludes_are_never_read(project):
    write(project, {".env": "TOKEN=abc\n", ".env.local": "X=1\n", "keys/id_rsa": "-----BEGIN\n",
                    "certs/site.pem": "x\n", ".ssh/config": "Host x\n", "src/id_map.py": "ids = {}\n",
                    "docs/notes.txt": "notes\n", "data/Table.CSV": "a,b\n", "Credentials.json": "{}\n",
                    "vendor/lib.py": "v = 1\n"})
    found = find_project_files(project, exclude=["docs/*", "*.csv", "vendor"])
    assert names(found) == ["Makefile", "src/id_map.py"]
    assert found.skipped == {"secret": 6, "excluded": 3}          # globs match whatever the case


@pytest.mark.parametrize("glob", ["data/", "/data", "/data/**", "./data/**", "data", "data/*", "{root}/data",
                                  "{root}/data/", "~/project/data"])
def test_an_exclude_glob_is_read_as_a_gitignore_line(project, glob):
    """Users write .gitignore's forms by habit: a folder with a trailing slash, anchored at the root
    with a leading slash or `./`, or the folder's absolute path; each excludes what the root's `data`
    holds (and nothing else of the project). Before, all but `data`, `data/*` and `data/**` excluded
    nothing, silently."""
    write(project, {"data/fixtures.py": "x = 1\n", "data/deep/more.py": "y = 2\n", "src/data_tools.py": "z\n",
                    "src/app.py": "print()\n"})
    found = find_project_files(project, exclude=[glob.format(root=project)])
    assert names(found) == ["Makefile", "src/app.py", "src/data_tools.py"], glob
    assert found.skipped == {"excluded": 2}


def test_an_anchored_glob_holds_at_the_root_alone_and_a_folders_anywhere(project):
    write(project, {"data/a.py": "a\n", "src/data/b.py": "b\n", "docs/c.md": "c\n", "src/docs/d.md": "d\n"})
    assert names(find_project_files(project, exclude=["/data"])) == ["Makefile", "docs/c.md", "src/data/b.py",
                                                                    "src/docs/d.md"]
    assert names(find_project_files(project, exclude=["docs/", "**/b.py"])) == ["Makefile", "data/a.py"]
    # `**/` in front of a path means the path anywhere; `/**/` inside, any folders or none
    write(project, {"gen/out/x.py": "x\n", "lib/gen/out/y.py": "y\n", "src/gen/z.py": "z\n", "src/a/gen/w.py": "w\n"})
    kept = names(find_project_files(project, exclude=["**/gen/out", "src/**/gen"]))
    assert [name for name in kept if "gen" in name] == [], kept


KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"


def test_a_file_holding_a_private_key_is_a_secret_whatever_its_name(project):
    """A service account's JSON, notes with a pasted key, a key at the end of a long file: never read.
    A PEM parser naming the header (no key after it) is code, and is."""
    from textgen_core.memory.project import project_texts

    write(project, {"service.json": '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
                                    + KEY_BODY + '\\n-----END PRIVATE KEY-----\\n"}\n',
                    "notes.txt": "deploy with\n-----BEGIN OPENSSH PRIVATE KEY-----\n" + KEY_BODY + "\n",
                    "pem.py": "HEADER = '-----BEGIN RSA PRIVATE KEY-----'\nFOOTER = '-----END RSA PRIVATE KEY-----'\n",
                    "long.py": "x = 1\n" * 20000 + "# -----BEGIN EC PRIVATE KEY-----\n# " + KEY_BODY + "\n"})
    found = find_project_files(project)
    assert names(found) == ["Makefile", "long.py", "pem.py"] and found.skipped == {"secret": 2}
    texts = project_texts(found)                    # long.py's key lies past the head read to list it
    assert len(texts) == 2 and not any(b"PRIVATE KEY-----\n#" in text for text in texts)


def test_links_are_not_followed_and_links_out_of_the_root_are_counted(project, tmp_path):
    outside = tmp_path / "outside"
    write(outside, {"private.txt": "private\n", "dir/more.txt": "private too\n"})
    write(project, {"real.txt": "mine\n", "sub/deep.txt": "deep\n"})
    os.symlink(outside / "private.txt", project / "link.txt")
    os.symlink(outside / "dir", project / "linked_dir")
    os.symlink(project / "real.txt", project / "inside_link.txt")
    os.symlink(project / "sub", project / "inside_dir")
    found = find_project_files(project)
    # A link inside the root is skipped too: its target is listed where it lies, and counted once.
    assert names(found) == ["Makefile", "real.txt", "sub/deep.txt"]
    assert found.skipped == {"link out of the root": 2, "link inside the root": 2}
    assert all(b"private" not in found.read(f) for f in found.files)


def test_a_file_swapped_for_a_link_or_grown_after_listing_is_refused_on_reading(project, tmp_path):
    write(tmp_path, {"private.txt": "private\n"})
    write(project, {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"})
    found = find_project_files(project, max_file_bytes=100)
    a, b, c = (next(f for f in found.files if f.relative == name) for name in ("a.txt", "b.txt", "c.txt"))
    (project / "a.txt").unlink()
    os.symlink(tmp_path / "private.txt", project / "a.txt")
    (project / "b.txt").write_text("b" * 101)
    (project / "c.txt").unlink()
    os.mkfifo(project / "c.txt")                                 # reading a FIFO would wait for ever
    for file in (a, b, c):
        with pytest.raises(RefusedFile):
            found.read(file)
    assert found.read(ProjectFile(project / "Makefile", "Makefile", 5)) == b"all:\n"


def test_binary_large_minified_generated_and_lock_files_are_skipped_with_their_reason(project):
    minified = "function(a,b){return a.map(function(c){return c+b})};var x=" * 40
    paragraph = "A paragraph of prose written on one line, as Markdown allows it, " * 30
    latin1 = "Nous avons mangé ensemble hier soir à la maison.\n".encode("latin-1") * 50   # 4 % not UTF-8
    write(project, {"image.dat": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "noise.bin": bytes(range(1, 256)) * 40,
                    "nul.txt": "header\0" + "text line\n" * 100, "big.txt": "a line\n" * 200_000,
                    "bundle.js": minified + "\n", "notes.md": f"# Notes\n\n{paragraph}\n", "latin1.txt": latin1,
                    "schema.py": "# Generated by the protocol buffer compiler.  DO NOT EDIT!\nx = 1\n",
                    "bench.py": '"""Milliseconds per generated byte, generated files measured."""\n',
                    "package-lock.json": "{}\n", "yarn.lock": "# yarn\n", "ok.txt": "fine\n",
                    "vendor.min.js": "var a = 1;\n"})
    found = find_project_files(project)
    assert names(found) == ["Makefile", "bench.py", "latin1.txt", "notes.md", "ok.txt"]
    assert found.skipped == {"binary": 3, "too large": 1, "generated": 3, "lock file": 2}


def test_a_fifo_or_device_is_never_opened(repo):
    (repo / "README.md").unlink()
    os.mkfifo(repo / "README.md")                                # tracked, now a FIFO: opening it would wait
    os.symlink("/dev/zero", repo / "zero")                        # a link out of the root, to a file without end
    found = find_project_files(repo)
    assert "README.md" not in names(found)
    assert found.skipped["not a regular file"] == 1 and found.skipped["link out of the root"] == 1
    (repo / ".git").rename(repo / "not-git")                      # the walk lists them too
    found = find_project_files(repo)
    assert found.skipped["not a regular file"] == 1 and found.skipped["link out of the root"] == 1


def test_the_total_bound_stops_adding_files(project):
    write(project, {f"data/{i:02d}.txt": "x" * 999 + "\n" for i in range(10)})
    found = find_project_files(project, max_total_bytes=3010)
    assert names(found) == ["Makefile", "data/00.txt", "data/01.txt", "data/02.txt"]
    assert found.total_bytes == 3005 and found.skipped == {"over the total bound": 7}


def test_what_is_read_from_skipped_files_is_bounded_too(project):
    write(project, {f"img/{i:02d}.bin": b"\0" * 20_000 for i in range(10)})
    write(project, {"zz.txt": "text\n"})
    found = find_project_files(project, max_total_bytes=20_000)       # 8 KB read of each binary file
    assert found.skipped == {"binary": 3, "over the total bound": 8} and names(found) == ["Makefile"]


def test_home_and_the_root_folder_are_refused_in_one_line(home, monkeypatch):
    for folder in (home, home.parent, Path("/")):
        with pytest.raises(ValueError, match="not a project") as refused:
            find_project_files(folder)
        assert "\n" not in str(refused.value)
    monkeypatch.setenv("HOME", "/")                               # a service's $HOME
    with pytest.raises(ValueError, match="the root folder, not a project"):
        find_project_files("/")
    with pytest.raises(ValueError, match="not a folder"):
        find_project_files(home / "missing")


def test_the_project_root_is_the_git_work_tree_else_a_marker_else_none(repo, home):
    assert project_root(repo / "src" / "app.py") == repo
    assert project_root(repo / "src" / "not_saved_yet.py") == repo
    assert project_root(repo / "src") == repo
    write(repo, {"src/package.json": "{}\n"})                    # a marker nearer than the work tree's root
    assert project_root(repo / "src" / "app.py") == repo
    plain = home / "plain"
    write(plain, {"pyproject.toml": "[project]\n", "pkg/sub/mod.py": "z = 3\n"})
    assert project_root(plain / "pkg" / "sub" / "mod.py") == plain
    plugin = home / "nvim-plugin"
    write(plugin, {"lua/thing/init.lua": "return {}\n", "plugin/thing.lua": "\n"})
    assert project_root(plugin / "lua" / "thing" / "init.lua") == plugin
    bare = home / "bare"
    write(bare, {"a.txt": "a\n"})
    assert project_root(bare / "a.txt") is None
    assert project_root(home) is None and project_root("/") is None


def test_a_dotfiles_repository_at_home_is_no_project(home):
    git(home, "init", "-q")
    write(home, {".gitignore": "*.md\n", "notes/todo.md": "- write\n"})
    assert project_root(home / "notes" / "todo.md") is None
    # The folder asked for is walked, not listed by the dotfiles' git (whose .gitignore would drop todo.md).
    assert names(find_project_files(home / "notes")) == ["todo.md"]


def test_a_repository_holding_home_is_no_project_for_a_file_outside_home(home, tmp_path, monkeypatch):
    """A file outside $HOME in a git work tree (or a marker's folder) that holds $HOME too (`/home` for
    another user's file, a machine's whole disk in git): no project, as for $HOME itself, rather than
    one that fails with advice a Neovim user cannot follow."""
    monkeypatch.setenv("HOME", str(tmp_path / "users" / "me"))
    (tmp_path / "users" / "me").mkdir(parents=True)
    git(tmp_path / "users", "init", "-q")
    write(tmp_path / "users", {"other/notes.py": "x = 1\n"})
    assert project_root(tmp_path / "users" / "other" / "notes.py") is None
    write(tmp_path / "users", {"other/pyproject.toml": "[project]\n"})
    assert project_root(tmp_path / "users" / "other" / "notes.py") == (tmp_path / "users" / "other").resolve()


def test_files_near_the_one_being_edited_come_first(repo):
    write(repo, {"lib/deep/here.py": "a = 1\n", "lib/deep/there.py": "b = 2\n", "lib/deep/sub/under.py": "u\n",
                 "lib/top.py": "c = 3\n", "lib/side/other.py": "d = 4\n"})
    found = names(find_project_files(repo, order_near=repo / "lib" / "deep" / "here.py"))
    # Folders between: 0, 0, 1 (down), 1 (up), 2 (up to the root), 2, 2 (up, down), 3 ...; ties by path.
    assert found == ["lib/deep/here.py", "lib/deep/there.py", "lib/deep/sub/under.py", "lib/top.py", ".gitignore",
                     "README.md", "lib/side/other.py", "src/app.py", "src/new.py", "src/util.py"]
    assert names(find_project_files(repo)) == sorted(found)


def test_outside_git_the_walk_skips_tool_folders_and_what_the_gitignore_names(tmp_path):
    root = tmp_path / "nogit"
    write(root, {"package.json": "{}\n", "index.js": "let a = 1\n", "node_modules/dep/index.js": "dep\n",
                 ".venv/lib/x.py": "venv\n", "src/__pycache__/x.txt": "cache\n", "pkg.egg-info/PKG-INFO": "x\n",
                 ".gitignore": "# comment\n*.log\n/out\ntmp/\n!keep.log\n**/cache.txt\n",
                 "app.log": "log\n", "keep.log": "log\n", "out/a.js": "a\n", "src/out/b.js": "b\n",
                 "src/tmp/c.js": "c\n", "lib/tmp": "t\n", "src/x/cache.txt": "c\n", "cache.txt": "c\n"})
    found = find_project_files(root)
    # Negations are not supported (keep.log stays out); `tmp/` names folders only, `/out` the root's.
    assert names(found) == [".gitignore", "index.js", "lib/tmp", "package.json", "src/out/b.js"]
    assert found.skipped == {"junk folder": 4, "ignored by git": 6}
