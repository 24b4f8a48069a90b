"""textgen_core: a byte-level char-GRU that continues text — train, save, load, sample, serve.

Editor-agnostic: imports neither pynvim nor TensorFlow (training and the TensorFlow backend import
it on demand), so the editor's process stays small and starts fast.
"""
from .config import ModelConfig, ModelInfo
from .decoding import DecodeOptions
from .model import TextModel, load_model
from .modelfile import ModelFileError
from .registry import ModelNotFoundError

__all__ = ["DecodeOptions", "ModelConfig", "ModelFileError", "ModelInfo", "ModelNotFoundError",
           "TextModel", "load_model"]
