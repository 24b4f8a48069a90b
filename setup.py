"""The one compiled part: the n-gram table lookup and prediction (textgen_core/memory/_table_lookup.c), optional.

Everything else is in pyproject.toml. `pip install` builds the helper where a C compiler and the
Python headers are there (a second or two with gcc); where they are not, the install goes on
without it and the plugin does the same lookups in Python (textgen_core/memory/table_blocks.py).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("textgen_core.memory._table_lookup", ["textgen_core/memory/_table_lookup.c"],
                             extra_compile_args=["-O2", "-std=c99", "-Wall", "-ffp-contract=off"], optional=True)])
