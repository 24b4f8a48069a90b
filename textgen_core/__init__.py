"""textgen_core: a byte-level char-GRU that continues text — train, save, load, sample, serve.

Editor-agnostic: imports neither pynvim nor TensorFlow (training and the TensorFlow backend import
it on demand), so the editor's process stays small and starts fast.
"""
import os
import sys

# Batch-1 GRU steps are small matrix products: OpenBLAS threads only add wake-up latency and fight the
# editor for cores (measured: 4 alternatives at 64x256x2 cost 0.39 ms/byte with one thread, 1.54 ms
# with the default two, AMD EPYC 2 cores). The variable counts before numpy loads; after, `blas` sets
# the loaded OpenBLAS's count itself, unless the user chose one.
_USER_CHOSE_THREADS = "OPENBLAS_NUM_THREADS" in os.environ
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
if "numpy" in sys.modules and not _USER_CHOSE_THREADS:
    from textgen_core.model.blas import set_blas_threads
    set_blas_threads(1)

from textgen_core.decode import DecodeOptions  # noqa: E402
from textgen_core.model.config import ModelConfig, ModelInfo  # noqa: E402
from textgen_core.model.files import ModelFileError  # noqa: E402
from textgen_core.model.registry import ModelNotFoundError  # noqa: E402
from textgen_core.model.text_model import TextModel, load_model  # noqa: E402

__all__ = ["DecodeOptions", "ModelConfig", "ModelFileError", "ModelInfo", "ModelNotFoundError",
           "TextModel", "load_model"]
