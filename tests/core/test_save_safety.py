"""Saving a model never deletes what is not a model's: a folder is replaced only when it is empty or a
model folder of ours holding nothing else, and the refusal comes before any work (issue 23, item 1)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, TINY_TEXT
from textgen_core.memory.ngram import build_ngram
from textgen_core.model.config import ModelConfig, ModelInfo
from textgen_core.model.files import (
    UnsafeSaveTargetError,
    check_backup_target,
    load_model_folder,
    recover_interrupted_save,
    remove_backup,
    save_model_folder,
)
from textgen_core.model.scratch import MARKER, PREFIX, remove_left_behind

CONFIG = ModelConfig(embed_dim=4, hidden=8, layers=1)


def _weights(value: float = 0.1) -> dict[str, np.ndarray]:
    return {name: np.full(shape, value, np.float32) for name, shape in CONFIG.weight_shapes().items()}


def _project(folder: Path) -> dict[str, bytes]:
    """A user's project: what must survive any save aimed at it."""
    (folder / "src").mkdir(parents=True)
    files = {"README.md": b"# my project\n", "src/main.py": b"print('hello')\n", "notes.txt": b"todo\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _unchanged(folder: Path, files: dict[str, bytes]) -> bool:
    return all((folder / name).read_bytes() == data for name, data in files.items())


def test_saving_into_a_project_folder_is_refused_and_deletes_nothing(tmp_path):
    project = tmp_path / "project"
    files = _project(project)
    with pytest.raises(UnsafeSaveTargetError, match=r"not saving a model over README.md, notes.txt, src/ in .*project"):
        save_model_folder(project, ModelInfo(CONFIG), _weights())
    assert _unchanged(project, files) and sorted(os.listdir(project)) == ["README.md", "notes.txt", "src"]
    assert sorted(os.listdir(tmp_path)) == ["project"]          # no temporary folder left beside it


def test_saving_over_a_folder_of_models_is_refused(tmp_path):
    models = tmp_path / "models"
    for name in ("novel", "code"):
        save_model_folder(models / name, ModelInfo(CONFIG), _weights())
    with pytest.raises(UnsafeSaveTargetError, match="not saving a model over code/, novel/ in"):
        save_model_folder(models, ModelInfo(CONFIG), _weights())
    for name in ("novel", "code"):
        load_model_folder(models / name)


def test_a_model_folder_with_a_file_of_the_users_is_not_replaced(tmp_path):
    folder = tmp_path / "m"
    save_model_folder(folder, ModelInfo(CONFIG), _weights(0.1))
    (folder / "my-notes.txt").write_text("keep me")
    with pytest.raises(UnsafeSaveTargetError, match="not saving a model over my-notes.txt in"):
        save_model_folder(folder, ModelInfo(CONFIG), _weights(0.2))
    assert (folder / "my-notes.txt").read_text() == "keep me"
    assert load_model_folder(folder)[1]["embedding"][0, 0] == pytest.approx(0.1)


def test_a_folder_whose_config_is_not_ours_is_not_replaced(tmp_path):
    folder = tmp_path / "other-tool"
    folder.mkdir()
    (folder / "config.json").write_text('{"format": "someone-else", "version": 1}')
    with pytest.raises(UnsafeSaveTargetError, match="its config.json is not a textgen model's"):
        save_model_folder(folder, ModelInfo(CONFIG), _weights())
    assert (folder / "config.json").read_text().startswith('{"format": "someone-else"')


def test_a_file_is_not_replaced_by_a_model(tmp_path):
    target = tmp_path / "essay.txt"
    target.write_text("my essay")
    with pytest.raises(UnsafeSaveTargetError, match="not saving a model over the file .*essay.txt"):
        save_model_folder(target, ModelInfo(CONFIG), _weights())
    assert target.read_text() == "my essay"


def test_an_empty_folder_and_a_model_folder_are_saved_into(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    save_model_folder(empty, ModelInfo(CONFIG), _weights(0.3))
    assert load_model_folder(empty)[1]["embedding"][0, 0] == pytest.approx(0.3)
    (empty / "MODEL_CARD.md").write_text("card")
    (empty / "CORPUS.tsv").write_text("kind\tsplit\n")
    save_model_folder(empty, ModelInfo(CONFIG), _weights(0.4))          # over a model of ours: replaced
    assert load_model_folder(empty)[1]["embedding"][0, 0] == pytest.approx(0.4)
    assert sorted(os.listdir(empty)) == ["CORPUS.tsv", "MODEL_CARD.md", "config.json", "weights.npz"]
    assert (empty / "CORPUS.tsv").read_text() == "kind\tsplit\n"            # its documents kept
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_what_a_killed_save_left_is_cleaned_of_model_files_only(tmp_path):
    """A `.NAME.old-PID` folder of a writer that is gone once held the previous model; if a user's
    file landed in it, recovery removes the model's files and leaves that one."""
    folder = tmp_path / "m"
    save_model_folder(folder, ModelInfo(CONFIG), _weights())
    gone = _pid_of_a_finished_process()
    old = tmp_path / f".m.old-{gone}"
    save_model_folder(old, ModelInfo(CONFIG), _weights())
    (old / "precious.txt").write_text("mine")
    recover_interrupted_save(folder)
    assert sorted(os.listdir(old)) == ["precious.txt"]
    load_model_folder(folder)


def test_saving_over_a_model_moves_its_documents_never_copies_or_deletes_them(tmp_path):
    """A model's card and corpus manifest may be a person's writing: a save moves them into the new
    folder (the same files), and removes nothing but the model's own files."""
    folder = tmp_path / "m"
    save_model_folder(folder, ModelInfo(CONFIG), _weights())
    (folder / "MODEL_CARD.md").write_text("# what I trained it on")
    (folder / "CORPUS.tsv").write_text("kind\tsplit\n")
    inodes = {name: (folder / name).stat().st_ino for name in ("MODEL_CARD.md", "CORPUS.tsv")}
    save_model_folder(folder, ModelInfo(CONFIG), _weights(0.5))
    assert {name: (folder / name).stat().st_ino for name in inodes} == inodes
    assert (folder / "MODEL_CARD.md").read_text() == "# what I trained it on"
    assert sorted(os.listdir(tmp_path)) == ["m"]                      # no leftover folder


def test_a_killed_saves_old_model_gives_up_its_model_files_alone(tmp_path):
    """The previous model left at `.m.old-PID` by a save killed after its swap, with a person's files
    in it: recovery moves its documents into the model where it has none of that name, and removes
    only the model's own files; the rest stays where it was."""
    folder = tmp_path / "m"
    save_model_folder(folder, ModelInfo(CONFIG), _weights())
    (folder / "CORPUS.tsv").write_text("the new model's manifest\n")
    old = tmp_path / f".m.old-{_pid_of_a_finished_process()}"
    save_model_folder(old, ModelInfo(CONFIG), _weights(0.3), ngram=build_ngram(b"abcabcabd" * 50))
    mine = {"MODEL_CARD.md": b"my card", "CORPUS.tsv": b"the old model's manifest\n", "notes.txt": b"mine"}
    for name, data in mine.items():
        (old / name).write_bytes(data)
    (old / "drafts").mkdir()
    (old / "drafts" / "a.txt").write_text("draft")
    recover_interrupted_save(folder)
    assert (folder / "MODEL_CARD.md").read_bytes() == b"my card"                       # moved in
    assert (folder / "CORPUS.tsv").read_text() == "the new model's manifest\n"        # not overwritten
    assert sorted(os.listdir(old)) == ["CORPUS.tsv", "drafts", "notes.txt"]
    assert (old / "CORPUS.tsv").read_bytes() == mine["CORPUS.tsv"] and (old / "notes.txt").read_bytes() == b"mine"
    assert (old / "drafts" / "a.txt").read_text() == "draft"
    load_model_folder(folder)


def _pid_of_a_finished_process() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_backup_folder_with_other_files_is_refused(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text("{}")
    check_backup_target(backup)                         # a backup of ours: resumed from
    (backup / "thesis.tex").write_text("chapter 1")
    with pytest.raises(UnsafeSaveTargetError, match="not keeping a training backup beside thesis.tex in"):
        check_backup_target(backup)


def textgen(*args):
    return subprocess.run([sys.executable, "-m", "textgen_core", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


@pytest.mark.parametrize("command", ["train", "train-backup", "ngram", "average", "widen", "fit"])
def test_the_cli_refuses_to_save_over_a_project_before_any_work(tmp_path, tiny_model_dir, command):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT)
    project = tmp_path / "project"
    files = _project(project)
    args = {
        "train": ["train", corpus, "--out", project, "--base", tiny_model_dir],
        "train-backup": ["train", corpus, "--out", tmp_path / "new", "--base", tiny_model_dir,
                         "--backup-dir", project],
        "ngram": ["ngram", tiny_model_dir, corpus, "--out", project],
        "average": ["average", tiny_model_dir, tiny_model_dir, "--out", project],
        "widen": ["widen", tiny_model_dir, "--hidden", 48, "--out", project],
        "fit": ["fit", tiny_model_dir, "--kind", "prose", corpus, "--out", project],
    }[command]
    run = textgen(*args)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(project) in lines[0] and "README.md, notes.txt, src/ in" in lines[0], lines
    assert _unchanged(project, files) and sorted(os.listdir(project)) == ["README.md", "notes.txt", "src"]
    assert not (tmp_path / "new").exists()


# -- what the clean-ups delete, pointed at a user's files --------------------------------------------

def _users_files(folder: Path) -> dict[str, bytes]:
    """A user's folder that has, besides their own files, files named as a model's or a backup's."""
    folder.mkdir(parents=True)
    files = {"README.md": b"# mine\n", "config.json": b'{"format": "my-own-tool"}', "weights.npz": b"my data",
             "training_metadata.json": b"{}", "latest.weights.h5": b"my weights", "MODEL_CARD.md": b"my card",
             "CORPUS.tsv": b"my table\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_a_users_folder_named_like_a_killed_saves_leftovers_is_kept_whole(tmp_path):
    """`.m.old-PID` and `.m.tmp-PID-X` of a writer that is gone are where a killed save leaves a model;
    a folder of the user's with such a name, even with files named as a model's, is not touched."""
    folder = tmp_path / "m"
    save_model_folder(folder, ModelInfo(CONFIG), _weights())
    gone = _pid_of_a_finished_process()
    planted = {tmp_path / f".m.old-{gone}": None, tmp_path / f".m.tmp-{gone}-abcdefgh": None}
    for place in planted:
        planted[place] = _users_files(place)
    recover_interrupted_save(folder)
    save_model_folder(folder, ModelInfo(CONFIG), _weights(0.2))       # a save cleans up the same way
    for place, files in planted.items():
        assert _unchanged(place, files) and sorted(os.listdir(place)) == sorted(files), place


def test_a_missing_model_is_not_replaced_by_a_users_folder_named_like_its_previous_copy(tmp_path):
    folder = tmp_path / "m"
    stranger = tmp_path / f".m.old-{_pid_of_a_finished_process()}"
    files = _users_files(stranger)
    recover_interrupted_save(folder)
    assert not folder.exists() and _unchanged(stranger, files)


def test_the_end_of_training_removes_the_backups_files_and_keeps_the_users(tmp_path):
    backup = tmp_path / "backup"
    files = _users_files(backup)
    (backup / "textgen_seconds.json").write_text("{}")
    del files["training_metadata.json"], files["latest.weights.h5"]     # names the backup writes: its own
    remove_backup(backup)
    assert sorted(os.listdir(backup)) == sorted(files) and _unchanged(backup, files)


def test_a_users_folder_named_like_a_killed_trainings_temp_folder_is_kept(tmp_path):
    gone = _pid_of_a_finished_process()
    users = tmp_path / f"{PREFIX}{gone}-photos"
    files = _users_files(users)
    ours = tmp_path / f"{PREFIX}{gone}-x1y2z3"          # what a killed training left: marked when made
    ours.mkdir()
    (ours / MARKER).touch()
    (ours / "__autograph_generated_file1.py").write_text("")
    remove_left_behind(tmp_path)
    assert _unchanged(users, files) and sorted(os.listdir(users)) == sorted(files)
    assert not ours.exists()


def test_a_users_files_in_a_models_ngram_folder_are_never_removed(tmp_path):
    """The n-gram folder of a model of ours is cleaned of the files a table has (`ngram.is_table_file`),
    never of a person's own, .npy or not: saving over it is refused, and a killed save's old copy
    with them in it gives up the table's files alone."""
    table = build_ngram(b"abcabcabd" * 50)
    folder = tmp_path / "m"
    save_model_folder(folder, ModelInfo(CONFIG), _weights(), ngram=table)
    mine = {"my_vectors.npy": b"\x93NUMPY not a table", "k3.keys.npy.bak": b"backup", "notes.txt": b"mine"}
    for name, data in mine.items():
        (folder / "ngram" / name).write_bytes(data)
    with pytest.raises(UnsafeSaveTargetError, match="not saving a model over ngram/ in"):
        save_model_folder(folder, ModelInfo(CONFIG), _weights(0.5), ngram=table)
    assert {name: (folder / "ngram" / name).read_bytes() for name in mine} == mine

    save_model_folder(tmp_path / "n", ModelInfo(CONFIG), _weights(0.7))
    old = tmp_path / f".n.old-{_pid_of_a_finished_process()}"
    os.replace(folder, old)
    recover_interrupted_save(tmp_path / "n")
    assert sorted(os.listdir(old)) == ["ngram"] and sorted(os.listdir(old / "ngram")) == sorted(mine)
    assert {name: (old / "ngram" / name).read_bytes() for name in mine} == mine
    load_model_folder(tmp_path / "n")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o077, 0o700), (0o002, 0o775)])
def test_a_saved_model_folder_has_the_permissions_the_users_umask_gives(tmp_path, umask, mode):
    # A save fills a temporary folder (made private by mkdtemp) and renames it into place: the
    # folder a user gets must be like any other they make.
    script = (f"import os, numpy as np; os.umask({umask:#o}); from textgen_core.model.config import ModelConfig, "
              "ModelInfo; from textgen_core.model.files import save_model_folder; c = ModelConfig(8, 8, 1); "
              "save_model_folder(os.environ['OUT'], ModelInfo(c), {n: np.zeros(s, np.float32) "
              "for n, s in c.weight_shapes().items()})")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, env={**os.environ, "OUT": str(tmp_path / "m")})
    assert (tmp_path / "m").stat().st_mode & 0o777 == mode


def test_a_model_saved_again_keeps_its_folders_permissions_and_a_shared_folders_group_bit(tmp_path):
    model = tmp_path / "m"
    save_model_folder(model, ModelInfo(CONFIG), _weights(0.1))
    model.chmod(0o750)                                    # the user's own choice for this model
    save_model_folder(model, ModelInfo(CONFIG), _weights(0.2))
    assert model.stat().st_mode & 0o7777 == 0o750
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2775)                                  # a group's folder: new folders keep its group
    save_model_folder(shared / "ours", ModelInfo(CONFIG), _weights(0.1))
    assert (shared / "ours").stat().st_mode & 0o2000
