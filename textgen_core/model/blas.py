"""One BLAS thread for the editor's process, even where numpy was imported before textgen_core.

Batch-1 GRU steps and the learner's small products gain nothing from OpenBLAS threads and lose
much when a core is busy: with one core spinning, a 32-byte learning step took 15–16 ms at the
median and 16–65 ms at p90 with numpy's default two threads, against 7 ms and 7–8 ms with one
(`python bench/blas_threads.py --busy`, Intel Xeon Sapphire Rapids, 2 cores).

`OPENBLAS_NUM_THREADS` only counts before numpy loads its OpenBLAS, and Neovim's Python host runs
every remote plugin in one process: another plugin may import numpy first. Then the thread count is
set through OpenBLAS's own function, in the library numpy bundles (`numpy.libs` on Linux and
Windows, `numpy/.dylibs` on macOS) and, on Linux, in any other OpenBLAS loaded (a distribution's or
conda's numpy links the system's). A count the user set in `OPENBLAS_NUM_THREADS` is left alone.
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

# The names numpy's bundled OpenBLAS (scipy-openblas, 64-bit ints) and a plain OpenBLAS export.
_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "_64_", "")


def _openblas_libraries() -> list[Path]:
    """The OpenBLAS libraries in this process: those the imported numpy ships with, then (on Linux)
    any other one loaded, such as the system OpenBLAS that a distribution's or conda's numpy links."""
    found: list[Path] = []
    numpy = sys.modules.get("numpy")
    if numpy is not None and getattr(numpy, "__file__", None):
        package = Path(numpy.__file__).parent
        found += sorted(package.parent.glob("numpy.libs/*openblas*")) + sorted(package.glob(".dylibs/*openblas*"))
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:                                 # not Linux
        maps = ""
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and "openblas" in Path(fields[5]).name.lower():
            path = Path(fields[5])
            if path not in found:
                found.append(path)
    return found


def _functions(action: str) -> list:
    """OpenBLAS's `set_num_threads` or `get_num_threads` of each OpenBLAS in this process ([] where
    there is none: another BLAS, Accelerate)."""
    functions = []
    for path in _openblas_libraries():
        try:
            library = ctypes.CDLL(str(path))       # already loaded: the same handle
        except OSError:
            continue
        names = (f"{prefix}{action}_num_threads{suffix}" for prefix in _PREFIXES for suffix in _SUFFIXES)
        function = next((f for f in (getattr(library, name, None) for name in names) if f is not None), None)
        if function is not None:
            functions.append(function)
    return functions


def set_blas_threads(threads: int) -> bool:
    """Set the thread count of every OpenBLAS in this process; False where there is none."""
    functions = _functions("set")
    for function in functions:
        function.argtypes, function.restype = [ctypes.c_int], None
        function(threads)
    return bool(functions)


def blas_threads() -> int | None:
    """The thread count of the first OpenBLAS in this process, or None where there is none."""
    functions = _functions("get")
    if not functions:
        return None
    function = functions[0]
    function.argtypes, function.restype = [], ctypes.c_int
    return int(function())
