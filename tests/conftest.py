"""Shared fixtures: real tiny models trained with TensorFlow once per test session."""
from __future__ import annotations

import os
import threading
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


def venv_without_training(folder: Path, with_pip: bool = False) -> Path:
    """A real virtual environment as the base install leaves it (`pip install -e .` without the `train`
    extra): numpy, pynvim and what they need, and this repository, but no TensorFlow and no Keras (and
    pip only `with_pip`). Made from the interpreter this project's .venv is made from, with links to the
    packages the .venv holds (no download). Returns its python."""
    import importlib.metadata
    import subprocess
    import sys

    from packaging.requirements import Requirement

    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    linked, wanted = set(), ["numpy", "pynvim", *(["pip"] if with_pip else [])]
    while wanted:
        dist = importlib.metadata.distribution(wanted.pop())
        if dist.metadata["Name"] in linked:
            continue
        linked.add(dist.metadata["Name"])
        wanted += [r.name for r in map(Requirement, dist.requires or [])
                   if r.marker is None or r.marker.evaluate({"extra": ""})]
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
            if not (site / top).exists():
                (site / top).symlink_to(dist.locate_file(top))
    (site / "textgen-repository.pth").write_text(f"{REPO}\n")           # textgen_core, as `pip install -e` does
    return python


@pytest.fixture(scope="session")
def python_without_training(tmp_path_factory) -> Path:
    """The python of `venv_without_training`, one for the session."""
    return venv_without_training(tmp_path_factory.mktemp("venv-without-training") / "venv")


@pytest.fixture(scope="session")
def python_with_pip_without_training(tmp_path_factory) -> Path:
    """The python of `venv_without_training` with pip, one for the session."""
    return venv_without_training(tmp_path_factory.mktemp("venv-with-pip") / "venv", with_pip=True)


def suggest(model, memories, context: str, options=None) -> str:
    """The engine's final suggestion after `context`, serving `memories` as the editor does (`options`:
    DecodeOptions(max_chars=30) unless given)."""
    from textgen_core.decode import DecodeOptions
    from textgen_core.serve.engine import Engine

    finals: list[str] = []
    done = threading.Event()

    def callback(completion):
        if completion.final:
            finals.append(completion.texts[0] if completion.texts else "")
            done.set()

    engine = Engine(model)
    try:
        engine.set_memories(memories)
        engine.submit("buf", context, options or DecodeOptions(max_chars=30), callback)
        assert done.wait(30), "no suggestion within 30 s"
    finally:
        engine.close()
    return finals[0]
