"""One BLAS thread for the editor's process, even where numpy was imported before textgen_core.

Batch-1 GRU steps and the learner's small products gain nothing from OpenBLAS threads and lose
much when a core is busy: with one core spinning, a 32-byte learning step took 15–16 ms at the
median and 16–65 ms at p90 with numpy's default two threads, against 7 ms and 7–8 ms with one
(`python bench/blas_threads.py --busy`, Intel Xeon Sapphire Rapids, 2 cores). `OPENBLAS_NUM_THREADS` only counts before numpy loads its
OpenBLAS, and Neovim's Python host runs every remote plugin in one process: another plugin may
import numpy first. Then the thread count is set through OpenBLAS's own function, found in the
library numpy bundles (`numpy.libs` on Linux and Windows, `numpy/.dylibs` on macOS). A count the user
set in `OPENBLAS_NUM_THREADS` is left alone.
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

# The names numpy's bundled OpenBLAS (scipy-openblas, 64-bit ints) and a plain OpenBLAS export.
_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "_64_", "")


def _bundled_openblas() -> list[Path]:
    """The OpenBLAS libraries that the imported numpy ships with (none if numpy is not imported)."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not getattr(numpy, "__file__", None):
        return []
    package = Path(numpy.__file__).parent
    return sorted(package.parent.glob("numpy.libs/*openblas*")) + sorted(package.glob(".dylibs/*openblas*"))


def _function(action: str):
    """OpenBLAS's `set_num_threads` or `get_num_threads`, or None where numpy has no OpenBLAS of its
    own (a system BLAS, Accelerate)."""
    for path in _bundled_openblas():
        try:
            library = ctypes.CDLL(str(path))       # already loaded by numpy: the same handle
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                function = getattr(library, f"{prefix}{action}_num_threads{suffix}", None)
                if function is not None:
                    return function
    return None


def set_blas_threads(threads: int) -> bool:
    """Set the loaded OpenBLAS's thread count; False where it cannot be found."""
    function = _function("set")
    if function is None:
        return False
    function.argtypes, function.restype = [ctypes.c_int], None
    function(threads)
    return True


def blas_threads() -> int | None:
    """The loaded OpenBLAS's thread count, or None where it cannot be found."""
    function = _function("get")
    if function is None:
        return None
    function.argtypes, function.restype = [], ctypes.c_int
    return int(function())
