"""textgen_core: a byte-level char-GRU that continues text — train, save, load, sample, serve.

Editor-agnostic: imports neither pynvim nor TensorFlow (training and the TensorFlow backend import
it on demand), so the editor's process stays small and starts fast.
"""
import os

# Batch-1 GRU steps are small matrix products: OpenBLAS threads only add wake-up latency and fight the
# editor for cores (measured: 4 alternatives at 64x256x2 cost 0.39 ms/byte with one thread, 1.54 ms
# with the default two, AMD EPYC 2 cores). Only takes effect when numpy is not yet imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .config import ModelConfig, ModelInfo  # noqa: E402
from .decoding import DecodeOptions  # noqa: E402
from .model import TextModel, load_model  # noqa: E402
from .modelfile import ModelFileError  # noqa: E402
from .registry import ModelNotFoundError  # noqa: E402

__all__ = ["DecodeOptions", "ModelConfig", "ModelFileError", "ModelInfo", "ModelNotFoundError",
           "TextModel", "load_model"]
