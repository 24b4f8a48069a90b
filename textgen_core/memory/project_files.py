"""The text files of a project, found safely: what project memory (`memory.project`) may read.

Key design ideas:
- The project (`project_root`) is the git work tree holding a file, else the nearest folder with a
  usual project marker; never $HOME or `/` (nor, for `find_project_files`, a folder holding $HOME).
- In git, the files are git's own (`git ls-files --cached --others --exclude-standard`: tracked, and
  untracked but not ignored). Outside git (or where git is missing, fails, or ignores the root itself,
  as a virtual environment's package) the tree is walked: VCS, tool and dependency folders skipped,
  the root's own .gitignore honoured in its simple forms (`_IgnoreRules`).
- A file is kept only if it is a regular file reached without a link, of at most `max_file_bytes`,
  text (no NUL byte, almost all UTF-8), written by a person (no minified or long machine lines, no
  "generated" marker at its top), and matches none of `DEFAULT_EXCLUDES` (secrets, lock files,
  generated files) nor the user's globs. `ProjectFiles.skipped` counts the others by reason.
- Bounded work whatever the folder holds: at most `MAX_LISTED` paths looked at, at most `HEAD_BYTES`
  read of a file to classify it (`BINARY_PROBE_BYTES` of a binary one), at most `max_total_bytes`
  kept, and at most as much again read from files that are then skipped.

What it doesn't do: follow links (a link's target is listed where it lies, if it lies in the root),
read nested .gitignore files or negations outside git, or look inside archives and notebooks.
"""
from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from textgen_core.model.safe_read import RefusedFile, open_regular, read_regular

MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 32 << 20
MAX_LISTED = 100_000                 # paths looked at, whatever the tree holds
HEAD_BYTES = 64 << 10                # read of a file to classify it
BINARY_PROBE_BYTES = 8 << 10         # a NUL byte here: binary (what git and grep look at)
# Invalid UTF-8 and control bytes above this share of the head: binary. Site-packages: 5 NUL-free files
# of 27,209 (2 .bin, 3 Vim keymaps in Latin-1 and cp1250); Latin-1 prose (about 4 %) stays text.
MAX_NOT_TEXT_SHARE = 0.1
# A line longer than LONG_LINE_BYTES is a machine's (minified code, data, base64) unless it reads as prose
# (a Markdown paragraph on one line): at least MIN_PROSE_SPACE_SHARE blanks and at most MAX_PROSE_LINE_BYTES.
# Measured on 27,210 text files of site-packages: prose-like long lines are 9 of the 11 .md files with a
# long line, minified .js has under 5 % blanks, protobuf's _pb2.py about 1 %.
LONG_LINE_BYTES = 1000
MIN_PROSE_SPACE_SHARE = 0.1
MAX_PROSE_LINE_BYTES = 10_000
MARKER_LINES = 5                     # where a "generated" marker is looked for
GIT_TIMEOUT_S = 10
GITIGNORE_BYTES = 64 << 10

# Never read, whatever the user's globs say. SSH keys by their usual names, not "id_*" (which would
# skip id_map.py and the like); "*secret*" and "credentials*" rather skip too much than too little.
SECRET_EXCLUDES = (".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*",
                   "id_ed25519*", "*.ppk", "*.p12", "*.pfx", "*.kdbx", "*.keystore", "*.jks", "credentials*",
                   "*secret*", ".netrc", ".npmrc", ".pypirc", ".pgpass", ".htpasswd", ".git-credentials", "*.gpg",
                   "*.asc", "*.tfstate", "*.tfstate.*", "*.tfvars", ".ssh", ".gnupg", ".aws")
# A private key's block, wherever it is (a service account's JSON, a fixture, notes): the file is a
# secret whatever its name. The key's base64 must follow (within a JSON string's escapes), so that a PEM
# parser's header constant is not taken for one. Every repeat is bounded and a header line ends at its line
# break, so that no text makes the search backtrack (a 1 MB file is searched in milliseconds).
PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY[A-Z ]{0,20}-----[^A-Za-z0-9+/]{0,8}"
                         rb"(?:[A-Za-z-]{1,40}: [^\n]*\n\s*){0,4}[A-Za-z0-9+/=]{40}")
# Text no person typed. "*.lock" covers yarn, poetry, Cargo, Gemfile, composer, uv and flake locks;
# "*-lock.json" npm's and lazy.nvim's. SVG is drawn by tools (path data), notebooks are JSON with
# escaped code and base64 outputs.
LOCK_EXCLUDES = ("*.lock", "*.lockb", "*-lock.json", "*-lock.yaml", "npm-shrinkwrap.json", "go.sum")
GENERATED_EXCLUDES = ("*.min.js", "*.min.css", "*.map", "*.svg", "*_pb2.py", "*_pb2_grpc.py", "*.pb.go", "*.ipynb")
DEFAULT_EXCLUDES = SECRET_EXCLUDES + LOCK_EXCLUDES + GENERATED_EXCLUDES

# Folders whose files are never the project's own writing, in git too (a committed node_modules).
VENDORED_FOLDERS = frozenset({"node_modules", "bower_components", ".venv", "venv", "site-packages", "__pycache__"})
# Version control's own data (a folder, or a file as a git worktree's `.git`).
VCS_NAMES = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs"})
# Folders the walk outside git does not enter: VCS, caches, build outputs (and *.egg-info).
WALK_SKIPPED_FOLDERS = VENDORED_FOLDERS | VCS_NAMES | {
    "build", "dist", "target", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".eggs", ".cache",
    ".gradle", ".idea", ".next", ".terraform", "htmlcov"}
PROJECT_MARKERS = (".hg", ".svn", "pyproject.toml", "setup.py", "setup.cfg", "package.json", "deno.json",
                   "Cargo.toml", "go.mod", "Makefile", "CMakeLists.txt", "meson.build", "build.gradle",
                   "build.gradle.kts", "pom.xml", "Gemfile", "composer.json", "mix.exs", "dune-project",
                   "stylua.toml", ".stylua.toml", ".luarc.json", "lazy-lock.json")
NEOVIM_PLUGIN_FOLDERS = ("lua", "plugin")    # a Neovim plugin's root holds both
# "Generated by the protocol buffer compiler.  DO NOT EDIT!", "This file is generated.", "@generated",
# "autogenerated by mlir-tblgen": a marker, or a comment line that starts with one (a docstring line
# "Milliseconds per generated byte" does not). Site-packages: 2,808 of 27,209 text files (protoc, upb,
# tblgen, TensorFlow's API generator, pygments' tables); 30 drawn at random were all generated. In this
# repository: none.
GENERATED_MARKER = re.compile(
    rb"do not (edit|modify)\b|@generated\b|^[^a-z0-9\n]*(this (file )?(is|was|has been) (an? )?)?(file |code )?"
    rb"(auto[- ]?|automatically |procedurally |machine[- ])?generated( file| code)?( automatically)?"
    rb"( by\b| from\b| with\b| using\b| via\b|[.!:;,]|\s*$)", re.MULTILINE)
NOT_TEXT_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f\v\x1b") + b"\x7f"


@dataclass(frozen=True)
class ProjectFile:
    """A file kept: where it is, its path from the project's root (posix), and its size when listed."""

    path: Path
    relative: str
    size: int


@dataclass(frozen=True)
class ProjectFiles:
    """The files kept (in order: nearest first, else by path), their total size, and how many paths
    were skipped for each reason (a folder skipped whole counts once)."""

    root: Path
    files: tuple[ProjectFile, ...]
    total_bytes: int
    skipped: dict[str, int]
    max_file_bytes: int = MAX_FILE_BYTES
    unread: tuple[str, ...] = ()        # files of the project left unread for the total bound, not excluded

    def read(self, file: ProjectFile) -> bytes:
        """The file's bytes, checked again as it is now: still no link on its way, a regular file of at
        most `max_file_bytes` (RefusedFile otherwise; OSError where it is gone)."""
        if os.path.realpath(file.path) != os.fspath(file.path):
            raise RefusedFile(f"{file.relative}: is reached through a link now, not read")
        data = read_regular(file.path, self.max_file_bytes, name=file.relative, why="that project memory reads")
        if holds_a_private_key(data):
            raise RefusedFile(f"{file.relative}: holds a private key, not read")
        return data


def project_root(path: str | Path) -> Path | None:
    """The project holding `path` (a file or folder, existing or not): the git work tree it is in,
    else the nearest folder with a project marker (`PROJECT_MARKERS`, or a Neovim plugin's lua/ and
    plugin/ folders), else None. The search stops below $HOME and `/`: neither is ever a project."""
    start = Path(path).expanduser().resolve()
    folders = _folders_below_home(start if start.is_dir() else start.parent)
    for folder in folders:
        if os.path.lexists(folder / ".git"):
            return folder
    for folder in folders:
        if _has_project_marker(folder):
            return folder
    return None


def find_project_files(root: str | Path, *, max_file_bytes: int = MAX_FILE_BYTES,
                       max_total_bytes: int = MAX_TOTAL_BYTES, exclude: Sequence[str] = (),
                       order_near: Path | None = None) -> ProjectFiles:
    """The text files of the project at `root` that its memory may read (see the module's notes),
    files near `order_near` (a file or folder of the project) first; ValueError, in one line, for a
    root that is not a folder or is $HOME, `/`, or a folder holding $HOME."""
    root = _checked_root(root)
    skipped: Counter[str] = Counter()
    relatives = _listed_files(root, skipped)
    relatives = _ordered(relatives, root, order_near)
    if len(relatives) > MAX_LISTED:
        skipped["too many files"] += len(relatives) - MAX_LISTED
        relatives = relatives[:MAX_LISTED]
    excludes = _GlobSet([exclude] if isinstance(exclude, str) else exclude, root=root)
    kept, total, left = _kept_files(root, relatives, excludes, max_file_bytes, max_total_bytes, skipped)
    if left:
        skipped["over the total bound"] += len(left)
    unread = tuple(relative for relative in left if excludes.reason(relative) is None)
    return ProjectFiles(root, tuple(kept), total, dict(skipped), max_file_bytes, unread)


def _kept_files(root: Path, relatives: list[str], excludes: _GlobSet, max_file_bytes: int, max_total_bytes: int,
                skipped: Counter[str]) -> tuple[list[ProjectFile], int, list[str]]:
    """The files kept, in order, their total size, and the paths left unread ("over the total bound"):
    the next text file would take the total over `max_total_bytes`, or the bytes read from files then
    skipped are over it too."""
    kept: list[ProjectFile] = []
    total = wasted = 0
    for index, relative in enumerate(relatives):
        reason, size, read = _classified(root, relative, excludes, max_file_bytes)
        if reason is None and total + size > max_total_bytes:
            return kept, total, relatives[index:]                       # this one and the rest
        if reason is None:
            kept.append(ProjectFile(root / relative, relative, size))
            total += size
            continue
        skipped[reason] += 1
        wasted += read
        if wasted > max_total_bytes:
            return kept, total, relatives[index + 1:]
    return kept, total, []


# ---- the project's root -------------------------------------------------------------------------

def _folders_below_home(folder: Path) -> list[Path]:
    """`folder` and its parents, nearest first, stopping before $HOME, a folder holding it (a file
    outside $HOME: `/home` with another user's file) and `/` (none of them is included)."""
    home = Path.home().resolve()
    folders = []
    for candidate in (folder, *folder.parents):
        if candidate.parent == candidate or home.is_relative_to(candidate):
            break
        folders.append(candidate)
    return folders


def _has_project_marker(folder: Path) -> bool:
    return (any(os.path.lexists(folder / marker) for marker in PROJECT_MARKERS)
            or all((folder / name).is_dir() for name in NEOVIM_PLUGIN_FOLDERS))


def _checked_root(root: str | Path) -> Path:
    """`root` resolved; ValueError (one line, with a way out) where it is no folder, or would take in
    the whole of $HOME or the file system."""
    resolved = Path(root).expanduser().resolve()
    home = Path.home().resolve()
    if resolved.parent == resolved:
        raise ValueError(f"{resolved} is the root folder, not a project: name the project's own folder")
    if home.parent != home and home.is_relative_to(resolved):
        what = "your home folder" if resolved == home else "a folder holding your home folder"
        raise ValueError(f"{resolved} is {what}, not a project: name the project's own folder")
    if not resolved.is_dir():
        raise ValueError(f"{resolved} is not a folder")
    return resolved


# ---- listing: git's files, else a walk ----------------------------------------------------------

def _listed_files(root: Path, skipped: Counter[str]) -> list[str]:
    """The paths (relative, posix) that may be project files: git's, else those a walk finds."""
    listing = _git_listing(root)
    if listing is None:
        return _walked_files(root, _IgnoreRules.of(root), skipped)
    files, ignored = listing
    if ignored:
        skipped["ignored by git"] += ignored
    return files


def _git_listing(root: Path) -> tuple[list[str], int] | None:
    """Tracked and untracked-not-ignored files under `root`, and how many entries git ignores there
    (an ignored folder counts once); None where `root` is in no git work tree below $HOME (a dotfiles
    repository at $HOME is no project's), git is missing or fails, or git ignores `root` itself."""
    if not any(os.path.lexists(folder / ".git") for folder in _folders_below_home(root)):
        return None
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is None or listed.returncode != 0:
        return None
    files = [os.fsdecode(name) for name in listed.stdout.split(b"\0") if name]
    if not files:
        ignores_root = _git(root, "check-ignore", "-q", ".")
        if ignores_root is None or ignores_root.returncode == 0:
            return None
    ignored = _git(root, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory")
    ignored_count = 0
    if ignored is not None and ignored.returncode == 0:
        ignored_count = sum(1 for name in ignored.stdout.split(b"\0") if name and name != b"./")
    return list(dict.fromkeys(files)), ignored_count       # a conflicted file is listed once per stage


def _git(root: Path, *arguments: str) -> subprocess.CompletedProcess[bytes] | None:
    """git run in `root`, or None where it is missing or takes over GIT_TIMEOUT_S. No shell; no lock
    taken; the environment's GIT_* variables (GIT_DIR set by a hook, say) dropped; and no fsmonitor,
    whose hook a repository's config may name (`git ls-files` would run it)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    command = ["git", "-c", "core.fsmonitor=false", "-C", str(root), *arguments]
    try:
        return subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, env=env,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass(frozen=True)
class _IgnoreRules:
    """The simple forms of the root's .gitignore, for the walk outside git: a glob without a slash
    matches a file's or folder's name at any depth, one with a slash (or a leading one) the path from
    the root; a trailing slash, folders only; a leading `**/` is dropped. Negations (`!`) are not
    supported: what they would take back stays skipped. Nested .gitignore files are not read."""

    rules: tuple[tuple[str, bool, bool], ...] = ()     # (glob, anchored at the root, folders only)

    @classmethod
    def of(cls, root: Path) -> _IgnoreRules:
        try:
            text = read_regular(root / ".gitignore", GITIGNORE_BYTES).decode("utf-8", "replace")
        except (OSError, RefusedFile):
            return cls()
        rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "!")):
                continue
            folders_only = line.endswith("/")
            glob = line.rstrip("/").removeprefix("**/")
            if glob.strip("/"):
                rules.append((glob.lstrip("/"), "/" in glob, folders_only))
        return cls(tuple(rules))

    def ignores(self, relative: str, is_folder: bool) -> bool:
        name = relative.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(relative if anchored else name, glob)
                   for glob, anchored, folders_only in self.rules if is_folder or not folders_only)


def _walked_files(root: Path, ignore: _IgnoreRules, skipped: Counter[str]) -> list[str]:
    """Files under `root`, folders in name order; links to folders, WALK_SKIPPED_FOLDERS, *.egg-info
    and what the .gitignore names are not entered; at most MAX_LISTED + 1 files (sorting and the
    bound come after)."""
    listed: list[str] = []
    for folder, folders, files in os.walk(root):
        here = Path(folder)
        prefix = here.relative_to(root).as_posix() + "/" if here != root else ""
        kept = []
        for name in sorted(folders):
            reason = _skipped_folder(root, here / name, prefix + name, ignore)
            if reason is not None:
                skipped[reason] += 1
            else:
                kept.append(name)
        folders[:] = kept
        for name in sorted(files):
            if name in VCS_NAMES:
                skipped["junk folder"] += 1
            elif ignore.ignores(prefix + name, False):
                skipped["ignored by git"] += 1
            else:
                listed.append(prefix + name)
                if len(listed) > MAX_LISTED:
                    return listed
    return listed


def _skipped_folder(root: Path, path: Path, relative: str, ignore: _IgnoreRules) -> str | None:
    """Why the walk does not enter the folder at `path` (None: it does). No link is entered: one
    inside the root leads to a folder walked where it lies."""
    if path.is_symlink():
        return "link inside the root" if inside(path, root) else "link out of the root"
    if path.name in WALK_SKIPPED_FOLDERS or path.name.endswith(".egg-info"):
        return "junk folder"
    if ignore.ignores(relative, True):
        return "ignored by git"
    return None


def inside(path: str | Path, root: Path) -> bool:
    """Whether `path`, its links resolved, lies under `root` (a resolved folder)."""
    return Path(os.path.realpath(path)).is_relative_to(root)


def private_reason(path: str | Path, root: Path | None, user_globs: Sequence[str] = ()) -> str | None:
    """Why an open buffer's text must not be remembered: "secret" where its file is one the project
    never reads (`SECRET_EXCLUDES`), "excluded" where the user's globs name it; None where it may be.
    Matched as the project's files are, on the path from `root` when the file is inside it, else on
    its name alone (the folders above a project are not the project's business)."""
    real = Path(os.path.realpath(path))
    relative = real.relative_to(root).as_posix() if root is not None and real.is_relative_to(root) else real.name
    return _private_globs(tuple(user_globs), root).reason(relative)


@functools.lru_cache(maxsize=8)
def _private_globs(user_globs: tuple[str, ...], root: Path | None) -> "_GlobSet":
    """The secrets and the user's globs, compiled once per set of globs and root (a buffer event asks)."""
    return _GlobSet(user_globs, (("secret", SECRET_EXCLUDES),), root=root)


# ---- ordering -----------------------------------------------------------------------------------

def _ordered(relatives: Iterable[str], root: Path, near: str | Path | None) -> list[str]:
    """By path; with `near` (a file or folder in the project), by the number of folders between the
    file and `near`'s folder (up, then down the tree) first: its folder, its sub- and parent folders,
    their siblings, ... — so that the total bound keeps the nearest files."""
    relatives = sorted(relatives)
    here = _near_folder(root, near)
    if here is None:
        return relatives

    def distance(relative: str) -> int:
        parts = relative.split("/")[:-1]
        shared = 0
        for mine, theirs in zip(here, parts):
            if mine != theirs:
                break
            shared += 1
        return len(here) - shared + len(parts) - shared

    return sorted(relatives, key=distance)


def _near_folder(root: Path, near: str | Path | None) -> tuple[str, ...] | None:
    if near is None:
        return None
    path = Path(near).expanduser().resolve()
    folder = path if path.is_dir() else path.parent
    return folder.relative_to(root).parts if folder.is_relative_to(root) else None


# ---- classifying one file -----------------------------------------------------------------------

class _GlobSet:
    """The default excludes and the user's globs, matched (case-insensitively): a glob without a slash
    against a file's name and the name of every folder it is in (`*.pem`, `vendor`), one with a slash
    against its path from the root (`docs/*`, `data/**`; a folder's glob takes what is under it too),
    the user's read as a .gitignore line is (`user_glob_forms`)."""

    def __init__(self, user_globs: Iterable[str], defaults: Sequence[tuple[str, Sequence[str]]] = (
            ("secret", SECRET_EXCLUDES), ("lock file", LOCK_EXCLUDES), ("generated", GENERATED_EXCLUDES)),
                 root: Path | None = None) -> None:
        names, paths = user_glob_forms(user_globs, root)
        self.checks = [(reason, _glob_regex(globs), None) for reason, globs in defaults if globs]
        if names or paths:
            self.checks.append(("excluded", _glob_regex(names) if names else None,
                                _glob_regex(paths) if paths else None))

    def reason(self, relative: str) -> str | None:
        lowered = relative.lower()
        parts = lowered.split("/")
        for reason, anywhere, from_root in self.checks:
            if anywhere is not None and (anywhere.match(lowered) or any(anywhere.match(part) for part in parts)):
                return reason
            if from_root is not None and from_root.match(lowered):
                return reason
        return None


def user_glob_forms(globs: Iterable[str], root: Path | None = None) -> tuple[list[str], list[str]]:
    """The user's exclude globs read as .gitignore lines are: (globs for a name anywhere, globs for a
    path from the root). A trailing `/` (a folder) is dropped; `**/` in front means anywhere; a glob
    with a slash, a leading `/` or `./`, or the project's own path in front (`~` expanded) holds from
    the root alone, and takes everything under a folder it names: `data/`, `/data`, `./data/**` and
    `/home/me/project/data` all exclude what the root's `data` folder holds (`data/` also a `data` folder
    deeper down); `**/gen/out` is that path anywhere, and `src/**/gen` takes `src/gen` too. A leading `/`
    that is no path into the project reads as the root."""
    names: list[str] = []
    paths: list[str] = []
    prefix = root.as_posix().rstrip("/") + "/" if root is not None else None
    for glob in globs:
        glob = os.path.expanduser(glob.strip()) if glob.strip().startswith("~") else glob.strip()
        if prefix is not None and (glob + "/").startswith(prefix):
            glob = "/" + glob[len(prefix):]
        glob = glob.rstrip("/")
        if glob.startswith("./"):
            glob = "/" + glob[2:]
        anywhere = glob.startswith("**/")
        while glob.startswith("**/"):
            glob = glob[3:]
        if "/" not in glob:
            if glob:
                names.append(glob)
            continue
        glob = glob.lstrip("/")
        if not glob:
            continue
        # fnmatch's * crosses slashes: "x/*" is all under a folder, "*/x" the path x anywhere, and a
        # "/**/" inside may also be no folder at all (`src/**/gen` takes `src/gen`)
        forms = {glob, glob.replace("/**/", "/")}
        for form in forms | ({"*/" + form for form in forms} if anywhere else set()):
            paths += [form, form + "/*"]
    return names, paths


def _glob_regex(globs: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(glob.lower())})" for glob in globs))


def _classified(root: Path, relative: str, excludes: _GlobSet, max_file_bytes: int) -> tuple[str | None, int, int]:
    """Why the file is skipped (None: kept), its size, and how many bytes were read to decide."""
    reason = excludes.reason(relative)
    if reason is None and VENDORED_FOLDERS.intersection(relative.split("/")[:-1]):
        reason = "junk folder"
    if reason is not None:
        return reason, 0, 0
    path = root / relative
    real = os.path.realpath(path)
    if real != os.fspath(path):
        return ("link inside the root" if Path(real).is_relative_to(root) else "link out of the root"), 0, 0
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file", 0, 0
        if info.st_size > max_file_bytes:
            return "too large", info.st_size, 0
        head = _head(path, max_file_bytes)
    except RefusedFile as refused:
        return ("not a regular file" if refused.not_regular else "too large"), 0, 0
    except OSError:
        return "unreadable", 0, 0
    return _content_reason(head), info.st_size, len(head)


def _head(path: Path, max_file_bytes: int) -> bytes:
    """The first HEAD_BYTES of the file, only BINARY_PROBE_BYTES where those hold a NUL byte."""
    with open_regular(path, max_file_bytes) as stream:
        head = stream.read(BINARY_PROBE_BYTES)
        if b"\0" not in head:
            head += stream.read(HEAD_BYTES - len(head))
    return head


def _content_reason(head: bytes) -> str | None:
    """"binary", "secret" (a private key), "generated" or None (text a person wrote), from the first
    bytes of a file (the whole of it is looked at for a key again when it is read)."""
    if _binary(head):
        return "binary"
    if holds_a_private_key(head):
        return "secret"
    if _generated(head):
        return "generated"
    return None


def holds_a_private_key(data: bytes | bytearray) -> bool:
    """Whether `data` holds a private key's PEM block (`PRIVATE_KEY`); a plain search first, since
    nearly no text holds one."""
    return b"PRIVATE KEY" in data and PRIVATE_KEY.search(data) is not None


def _binary(head: bytes) -> bool:
    """A NUL byte in the first BINARY_PROBE_BYTES, or more than MAX_NOT_TEXT_SHARE of the head
    invalid UTF-8 or control bytes (Latin-1 prose with its accents stays text)."""
    if b"\0" in head[:BINARY_PROBE_BYTES]:
        return True
    control = len(head) - len(head.translate(None, NOT_TEXT_BYTES))
    invalid = head.decode("utf-8", "replace").count("\ufffd")     # a character cut at the end counts one
    return control + invalid > MAX_NOT_TEXT_SHARE * len(head)


def _generated(head: bytes) -> bool:
    """A "generated" marker in the first MARKER_LINES lines, or a machine's long line in the head."""
    top = b"\n".join(head.split(b"\n", MARKER_LINES)[:MARKER_LINES]).lower()
    if GENERATED_MARKER.search(top):
        return True
    return any(len(line) > LONG_LINE_BYTES and _machine_line(line) for line in head.split(b"\n"))


def _machine_line(line: bytes) -> bool:
    blanks = line.count(b" ") + line.count(b"\t")
    return len(line) > MAX_PROSE_LINE_BYTES or blanks < MIN_PROSE_SPACE_SHARE * len(line)
