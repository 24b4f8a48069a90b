"""The command line of a Python child that runs one of textgen's modules, and never a module from
its working directory.

`python -m MODULE` puts the working directory first on `sys.path`, ahead of the standard library,
and the host's working directory is Neovim's: often a project a person has just cloned. A child
started so imports that project's `shlex.py`, `json.py` or `textgen_core/` instead of the real ones:
opening a file would run code from its folder. The child here drops the working directory from
`sys.path` before it imports anything (Python's own start-up imports come before it is added), then
runs the module with the function `-m` itself calls (`runpy._run_module_as_main`: the module as
`__main__`, its errors said as `-m` says them, "python: No module named pip").
"""
from __future__ import annotations

SAFE_MAIN = ("import sys; sys.path[:] = [p for p in sys.path if p != '']; import runpy; "
             "runpy._run_module_as_main(sys.argv.pop(1))")


def module_command(python: str, module: str, *args: str) -> list[str]:
    """`python -m module args...`, safe to start in any folder (with `module` importable from
    PYTHONPATH or the Python's own packages)."""
    return [python, "-c", SAFE_MAIN, module, *args]
