"""`python -m textgen_core ...`: the same CLI as the `textgen` console script."""
import sys

from .cli import main

sys.exit(main())
