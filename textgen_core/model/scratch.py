"""A private temporary folder for a training process, removed when it ends, or by the next one
when it was killed.

TensorFlow's autograph writes `__autograph_generated_file*.py` into the system's temporary folder and
removes them only at a normal exit, so a cancelled (SIGTERM) or killed (SIGKILL) training left them
behind, a few more each time. Training runs inside `private_temp_folder()`: everything written
through `tempfile` goes into `textgen-train-PID-XXXX` there, which goes as a whole.
"""
from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "textgen-train-"
# Written into every private folder when it is made: only a folder that holds it, a regular file, and
# that belongs to this user, is one of ours; a folder of someone's that merely has such a name is not.
MARKER = ".made-by-textgen-train"


def process_gone(pid: str) -> bool:
    """Whether the process `pid` (a number as text) has ended; False when unsure or when it is us."""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@contextmanager
def private_temp_folder() -> Iterator[Path]:
    """Send `tempfile` (and children, through $TMPDIR) into a folder of this process's own for the
    block, and remove it after; SIGTERM ends the block like an exception, so cancelling cleans up."""
    base = Path(tempfile.gettempdir())
    remove_left_behind(base)
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base)
    Path(folder, MARKER).touch()
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    saved_handler = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    tempfile.tempdir, os.environ["TMPDIR"] = folder, folder
    try:
        yield Path(folder)
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        signal.signal(signal.SIGTERM, saved_handler)
        shutil.rmtree(folder, ignore_errors=True)


def remove_left_behind(base: Path) -> None:
    """Remove the private folders of training processes that were killed (their process is gone):
    only folders this project made (`is_ours`), never another that has the same kind of name."""
    for folder in base.glob(f"{PREFIX}*-*"):
        if is_ours(folder) and process_gone(folder.name[len(PREFIX):].split("-")[0]):
            shutil.rmtree(folder, ignore_errors=True)


def is_ours(folder: Path) -> bool:
    """Whether `folder` is a private folder `private_temp_folder` made: a real folder of this user's
    (not a link) that holds the marker written when it was made."""
    try:
        info, marker = os.lstat(folder), os.lstat(folder / MARKER)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_ISREG(marker.st_mode)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)
