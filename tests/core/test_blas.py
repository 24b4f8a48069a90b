"""One OpenBLAS thread in the editor's process, whichever of numpy and textgen_core loads first
(Neovim's Python host runs every remote plugin in one process), and a count the user chose kept."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLAS_MODULE = REPO / "textgen_core" / "model" / "blas.py"

# numpy first, then textgen_core/model/blas.py loaded alone (importing it through the package would run
# textgen_core's own setting first), as `blas`.
NUMPY_THEN_BLAS_ALONE = f"""
import importlib.util, sys, types
import numpy
spec = importlib.util.spec_from_file_location("blas_alone", {str(BLAS_MODULE)!r})
blas = importlib.util.module_from_spec(spec)
spec.loader.exec_module(blas)
"""

# The thread count before and after textgen_core is imported.
REPORT = NUMPY_THEN_BLAS_ALONE + f"""
before = blas.blas_threads()
sys.path.insert(0, {str(REPO)!r})
import textgen_core
print(before, blas.blas_threads())
"""

# The OpenBLAS found only among the libraries loaded (numpy's own, which the search for the libraries
# numpy bundles is kept from seeing): what a distribution's numpy, linked to the system's OpenBLAS, gets.
LOADED_ONLY = NUMPY_THEN_BLAS_ALONE + """
before = blas.blas_threads()
blas.sys = types.SimpleNamespace(modules={})          # no numpy to look into
print(before, blas.set_blas_threads(1), blas.blas_threads())
"""


def run_python(script: str, user_threads: str | None = None) -> list[str]:
    """What `script` prints, split, run in a fresh Python with OPENBLAS_NUM_THREADS as the user set it."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if user_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = user_threads
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, capture_output=True,
                          text=True, timeout=60).stdout.split()


def test_numpy_imported_first_gets_one_thread_from_textgen_core():
    before, after = map(int, run_python(REPORT))
    if before == 1:
        pytest.skip("numpy's OpenBLAS starts with one thread on this machine: nothing to change")
    assert after == 1


def test_a_thread_count_the_user_chose_is_kept():
    assert tuple(map(int, run_python(REPORT, user_threads="2"))) == (2, 2)


def test_textgen_core_imported_first_gives_one_thread():
    # The path that sets OPENBLAS_NUM_THREADS before numpy loads its OpenBLAS.
    out = run_python("import textgen_core, numpy\n"
                     "from textgen_core.model.blas import blas_threads\nprint(blas_threads())")
    assert out == ["1"]


def test_an_openblas_numpy_does_not_bundle_is_found_among_the_loaded_libraries():
    if not Path("/proc/self/maps").exists():
        pytest.skip("the loaded libraries are read from /proc (Linux)")
    out = run_python(LOADED_ONLY)
    if out[0] == "1":
        pytest.skip("numpy's OpenBLAS starts with one thread on this machine: nothing to change")
    assert out[1:] == ["True", "1"]
