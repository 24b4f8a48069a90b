"""Model folders are data: validated on load with a clear error, written atomically, never unpickled."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textgen_core import ModelFileError, ModelNotFoundError, load_model
from textgen_core.model.config import ModelConfig, ModelInfo
from textgen_core.model.files import load_model_folder, save_model_folder
from textgen_core.model.registry import resolve_model_path

CONFIG = ModelConfig(embed_dim=4, hidden=8, layers=2)


def _weights(config=CONFIG, value=0.1):
    return {name: np.full(shape, value, np.float32) for name, shape in config.weight_shapes().items()}


@pytest.fixture
def folder(tmp_path):
    return save_model_folder(tmp_path / "m", ModelInfo(CONFIG, training={"corpus": "x"}, metrics={"val_bpc": 2.5}),
                             _weights())


def test_saved_folder_loads_back(folder):
    info, weights = load_model_folder(folder)
    assert info.config == CONFIG and info.val_bpc == 2.5
    assert set(weights) == set(CONFIG.weight_shapes())
    assert sorted(os.listdir(folder)) == ["config.json", "weights.npz"]


def test_float16_storage_loads_as_float32(tmp_path):
    folder = save_model_folder(tmp_path / "h", ModelInfo(CONFIG), _weights(), dtype="float16")
    _, weights = load_model_folder(folder)
    assert weights["embedding"].dtype == np.float32


def _rewrite_npz(folder, **changes):
    with np.load(folder / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    with open(folder / "weights.npz", "wb") as f:
        np.savez(f, **arrays)


def test_missing_weights_file(folder):
    (folder / "weights.npz").unlink()
    with pytest.raises(ModelFileError, match="weights.npz: missing"):
        load_model_folder(folder)


def test_truncated_weights_file(folder):
    data = (folder / "weights.npz").read_bytes()
    (folder / "weights.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="unreadable or truncated"):
        load_model_folder(folder)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/textgen-pwned",))


def test_pickled_object_in_npz_is_refused_and_never_run(folder):
    Path("/tmp/textgen-pwned").unlink(missing_ok=True)
    payload = np.empty(1, dtype=object)
    payload[0] = _Boom()
    _rewrite_npz(folder, embedding=payload)
    with pytest.raises(ModelFileError, match="plain arrays only|dtype"):
        load_model_folder(folder)
    assert not Path("/tmp/textgen-pwned").exists()


def test_shape_mismatch_names_the_array(folder):
    _rewrite_npz(folder, **{"gru1/kernel": np.zeros((8, 7), np.float32)})
    with pytest.raises(ModelFileError, match=r"'gru1/kernel' has shape \(8, 7\), config.json says \(8, 24\)"):
        load_model_folder(folder)


def test_nan_weights_are_refused(folder):
    bad = np.full((8, 256), np.nan, np.float32)
    _rewrite_npz(folder, **{"dense/kernel": bad})
    with pytest.raises(ModelFileError, match="NaN"):
        load_model_folder(folder)


def test_unknown_format_version(folder):
    config = json.loads((folder / "config.json").read_text())
    config["version"] = 99
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="unsupported format version 99"):
        load_model_folder(folder)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelFileError, match="not a model folder"):
        load_model_folder(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable JSON"):
        load_model_folder(tmp_path / "x")


def test_model_names_cannot_escape_their_folder_and_paths_are_taken_as_written(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTGEN_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models" / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for name in ("x..y", "sub\\..", "a b"):
        with pytest.raises(ModelNotFoundError, match="not a valid model name"):
            resolve_model_path(name)
    monkeypatch.chdir(tmp_path / "models" / "sub")
    assert resolve_model_path("../../elsewhere") == tmp_path / "elsewhere"     # a path, from the current folder
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        resolve_model_path("../missing")
    with pytest.raises(ModelNotFoundError, match="no model named 'missing'"):
        load_model("missing")


def test_failed_save_leaves_the_previous_model_intact(folder):
    before = (folder / "weights.npz").read_bytes()
    bad = _weights()
    bad["embedding"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ModelFileError):
        save_model_folder(folder, ModelInfo(CONFIG), bad)
    assert (folder / "weights.npz").read_bytes() == before
    assert [p.name for p in folder.parent.iterdir()] == ["m"]


def test_save_replaces_an_existing_model_atomically(folder):
    save_model_folder(folder, ModelInfo(CONFIG, metrics={"val_bpc": 1.0}), _weights(value=0.2))
    info, weights = load_model_folder(folder)
    assert info.val_bpc == 1.0 and weights["embedding"][0, 0] == pytest.approx(0.2)
    assert [p.name for p in folder.parent.iterdir()] == ["m"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=600))
def test_fuzzed_weight_files_never_crash_the_loader(tmp_path_factory, junk):
    folder = tmp_path_factory.mktemp("fuzz")
    save_model_folder(folder / "m", ModelInfo(CONFIG), _weights())
    original = (folder / "m" / "weights.npz").read_bytes()
    # splice junk into a real file: a header kept, the rest damaged
    (folder / "m" / "weights.npz").write_bytes(original[:64] + junk + original[64 + len(junk):])
    try:
        load_model_folder(folder / "m")
    except ModelFileError:
        pass
    shutil.rmtree(folder)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["format", "version", "architecture", "training"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                 st.dictionaries(st.sampled_from(["embed_dim", "hidden", "layers"]),
                                                 st.one_of(st.integers(-3, 10**6), st.text(max_size=3))))))
def test_fuzzed_configs_give_a_model_file_error(tmp_path_factory, config):
    folder = tmp_path_factory.mktemp("cfg")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError):
        load_model_folder(folder)


def test_disk_full_while_saving_keeps_the_previous_model_and_no_debris(folder, monkeypatch):
    before = (folder / "weights.npz").read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_model_folder(folder, ModelInfo(CONFIG), _weights(value=0.3))
    assert (folder / "weights.npz").read_bytes() == before
    assert [p.name for p in folder.parent.iterdir()] == ["m"]


_KILLED_SAVE = r"""
import os, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from textgen_core.model import files as modelfile
from textgen_core.model.config import ModelConfig, ModelInfo
config = ModelConfig(embed_dim=4, hidden=8, layers=2)
weights = {name: np.full(shape, 0.7, np.float32) for name, shape in config.weight_shapes().items()}
where = sys.argv[3]
real_replace, real_savez = os.replace, np.savez
def replace(src, dst):
    real_replace(src, dst)
    if where == "between renames":          # the old model has just moved aside
        os.kill(os.getpid(), signal.SIGKILL)
def savez(*args, **kwargs):
    if where == "while writing":
        os.kill(os.getpid(), signal.SIGKILL)
    real_savez(*args, **kwargs)
os.replace, np.savez = replace, savez
modelfile.save_model_folder(sys.argv[2], ModelInfo(config), weights)
"""


@pytest.mark.parametrize("where", ["between renames", "while writing"])
def test_a_save_killed_midway_loses_nothing_and_its_debris_goes(folder, where):
    import subprocess
    import sys

    before = (folder / "weights.npz").read_bytes()
    killed = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(Path(__file__).parents[2]), str(folder), where])
    assert killed.returncode == -9
    assert len(list(folder.parent.iterdir())) == 2            # the model (or its moved-aside copy) + debris
    info, _ = load_model_folder(folder)                       # the previous model, back in place
    assert (folder / "weights.npz").read_bytes() == before and info.val_bpc == 2.5
    save_model_folder(folder, ModelInfo(CONFIG), _weights(value=0.3))
    assert [p.name for p in folder.parent.iterdir()] == ["m"]
    assert load_model_folder(folder)[1]["embedding"][0, 0] == np.float32(0.3)


def test_a_running_writers_folders_are_left_alone(folder):
    """Another process saving the same model right now keeps its temporary folder."""
    busy = folder.parent / f".m.tmp-{os.getppid()}-x"
    busy.mkdir()
    save_model_folder(folder, ModelInfo(CONFIG), _weights(value=0.3))
    assert busy.is_dir()


def test_a_named_model_whose_save_was_killed_still_loads_by_name(folder, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("TEXTGEN_MODELS_DIR", str(folder.parent))
    subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(Path(__file__).parents[2]), str(folder),
                    "between renames"])
    assert not folder.exists()
    assert load_model("m").info.val_bpc == 2.5
