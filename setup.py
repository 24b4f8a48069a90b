"""The compiled parts, both optional: the n-gram table lookup and prediction
(textgen_core/memory/_table_lookup.c) and the GRU's step of a few rows (textgen_core/model/_gru_step.c).

Everything else is in pyproject.toml. `pip install` builds each helper where a C compiler and the
Python headers are there (a few seconds with gcc); where they are not, the install goes on without
them and the plugin does the same in Python and numpy (textgen_core/memory/table_blocks.py,
textgen_core/model/numpy_gru.py).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("textgen_core.memory._table_lookup", ["textgen_core/memory/_table_lookup.c"],
                             extra_compile_args=["-O2", "-std=c99", "-Wall", "-ffp-contract=off"], optional=True),
                   # -O3, no floating-point traps and fused multiply-adds: the products and tanh are loops the
                   # compiler turns into vector instructions (a comparison that may not trap is one it can turn
                   # into a select; -std=c99 alone would keep every multiply and add apart).
                   Extension("textgen_core.model._gru_step", ["textgen_core/model/_gru_step.c"],
                             extra_compile_args=["-O3", "-std=c99", "-Wall", "-fno-trapping-math",
                                                 "-ffp-contract=fast"], optional=True)])
