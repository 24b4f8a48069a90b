"""Shared fixtures: real tiny models trained with TensorFlow once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent

# A small text with strong regularities, so a tiny model learns it in seconds.
_SENTENCES = [
    "the quick brown fox jumps over the lazy dog.",
    "a stitch in time saves nine.",
    "def greet(name):\n    return 'hello ' + name\n",
    "the cat sat on the mat and the dog sat on the log.",
    "naïve café 日本 — unicode is just bytes to the model.",
]
TINY_TEXT = "\n".join(_SENTENCES[i % len(_SENTENCES)] for i in range(400)) + "\n"


def train_tiny_model(out: Path, hidden: int = 64, layers: int = 1, steps: int = 600, text: str = TINY_TEXT) -> Path:
    """Train a real (tiny) char-GRU on TINY_TEXT and save it as a model folder."""
    from textgen_core.model.config import ModelConfig
    from textgen_core.train.training import TrainingText, TrainOptions, train

    options = TrainOptions(seq_len=64, batch_size=32, epochs=4, steps_per_epoch=steps // 4,
                           learning_rate=1e-2, patience=4, seed=1)
    train([TrainingText("tiny.txt", text.encode())], out,
          config=ModelConfig(embed_dim=16, hidden=hidden, layers=layers), options=options)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A model folder of a 1-layer, 64-unit GRU trained for real on TINY_TEXT."""
    return train_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from textgen_core import load_model
    return load_model(tiny_model_dir)
