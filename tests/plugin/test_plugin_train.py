"""End to end: :TextGenTrain and :TextGenTrainStop in a real Neovim with the plugin loaded as a user
would load it, fine-tuning the tiny model on a buffer with a real TensorFlow training job."""
from __future__ import annotations

import os
import re
import resource
import shutil
import signal
from pathlib import Path

import pytest

from tests.nvim_harness import (
    PYTHON,
    REPO,
    Screen,
    ghost,
    idle,
    is_running,
    lua,
    messages,
    mode,
    process_environ,
    shared_manifest,
    start_nvim,
    stderr_logging_python,
    wait_for,
)
from textgen_core import load_model
from textgen_core.decode import DecodeOptions
from textgen_core.serve.engine import fresh_completion

from .test_plugin_quit import quit_and_check_nothing_is_left

# A few KB in a style the tiny model has not seen.
NOVEL = "".join(f"Chapter {i}. The lighthouse keeper counted the ships at dawn, and the sea kept its secrets.\n"
                for i in range(60))
# Small, fast training for tests (the architecture comes from the tiny base model).
QUICK = {"train_args": ["--epochs", "3", "--steps-per-epoch", "15", "--batch-size", "16", "--seq-len", "64"],
         "train_minutes": 1}
SLOW = {"train_args": ["--epochs", "50", "--steps-per-epoch", "400"], "train_minutes": 5}
# The least training that still saves a model: for faults at saving time.
SHORTEST = {"train_args": ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--seq-len", "32"]}

# The editor answers every keystroke while TensorFlow trains: a keystroke answered this much later is
# a freeze (a deadline only a hang misses; how fast it answers is bench/finetune.py's to measure).
FREEZE_S = 5.0


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trained-models")


@pytest.fixture(scope="module")
def nvim(tiny_model_dir, models_dir, tmp_path_factory):
    editor = start_nvim(shared_manifest(), tmp_path_factory.mktemp("nvim-home"),
                        {"model": str(tiny_model_dir), **QUICK}, models_dir=models_dir)
    yield editor
    editor.close()


@pytest.fixture
def vim(nvim, tiny_model_dir):
    wait_for(lambda: training(nvim)["state"] != "running", timeout=30, what="no training running")
    nvim.input("<Esc>")
    wait_for(lambda: mode(nvim) == "n", what="normal mode")
    nvim.command("silent! %bwipeout! | messages clear")
    lua(nvim, "vim.g.textgen = ...; require('textgen').setup({})", {"model": str(tiny_model_dir), **QUICK})
    wait_for(lambda: idle(nvim), what="textgen to be idle")
    return nvim


def training(nvim) -> dict:
    return lua(nvim, "return require('textgen').status().training")


def host_model_path(nvim) -> str | None:
    return lua(nvim, "return (require('textgen.host').model or {}).path")


def open_text(nvim, text: str) -> None:
    nvim.command("enew")
    nvim.current.buffer[:] = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def start_training(nvim, command: str = "TextGenTrain") -> dict:
    nvim.command(command)
    return wait_for(lambda: (t := training(nvim))["state"] == "running" and t, what="training to start")


def test_training_on_the_buffer_keeps_the_editor_answering_and_swaps_in_the_new_model(vim, models_dir,
                                                                                       tmp_path):
    project = tmp_path / "my novel"
    project.mkdir()
    vim.command(f"cd {project}")
    open_text(vim, NOVEL)
    job = start_training(vim)
    out = models_dir / "my-novel"
    assert job["name"] == "my-novel" and job["path"] == str(out)
    assert "training" in lua(vim, "return vim.fn['textgen#status']()")

    # Type while it trains: every keystroke's request must be answered, none frozen.
    vim.command("normal! G$")
    typed = []

    def type_while(condition) -> None:
        vim.input("o")
        while condition() and len(typed) < 3000:
            typed.append("a" if len(typed) % 60 else "<CR>")
            vim.input(typed[-1])
            wait_for(lambda: idle(vim), timeout=FREEZE_S, what="the keystroke's request to be answered")
        vim.input("<Esc>")

    type_while(lambda: training(vim)["state"] == "running" and not training(vim).get("percent"))
    # The progress line is shown in place on the command line (in insert mode "-- INSERT --" is there,
    # and require('textgen').status() serves statuslines). The screen is watched only now: its
    # thread would compete with the typing above.
    screen = Screen(vim)
    try:
        wait_for(lambda: any(f[-1].startswith("textgen: training 'my-novel' ") and "%" in f[-1] and "val bpc" in f[-1]
                             for f in screen.frames), timeout=30, what="the progress line on the screen")
    finally:
        screen.close()
    type_while(lambda: training(vim)["state"] == "running")
    assert typed, "no keystroke was typed while it trained"

    done = wait_for(lambda: (t := training(vim))["state"] != "running" and t, timeout=60, what="training to end")
    assert done["state"] == "done", messages(vim)
    wait_for(lambda: host_model_path(vim) == str(out), timeout=20, what="the new model in the engine")
    assert (out / "config.json").exists() and (out / "weights.npz").exists()
    said = wait_for(lambda: "trained 'my-novel'" in (m := messages(vim)) and m, what="the done message")
    assert re.search(r"trained 'my-novel', now in use: val bpc [\d.]+ → [\d.]+ \(\d+% (lower|higher)\)", said), said

    status = vim.api.exec2("TextGenStatus", {"output": True})["output"]
    assert f"model: my-novel ({out})" in status
    assert f"saved {out} (in use)" in status and "last training: val bpc" in status
    assert lua(vim, "return require('textgen.host').status()")["tensorflow_imported"] is False

    # Suggestions now come from the new model.
    new = load_model(out)
    expected = fresh_completion(new, "Chapter 7. The ", DecodeOptions())[0].rstrip()
    vim.input("<Esc>")
    vim.command("enew | bwipeout! #")      # the novel leaves the open buffers' memory: the model's alone
    wait_for(lambda: lua(vim, "return require('textgen.host').status()")["memory"]["buffers"]["bytes"] == 0,
             what="the open buffers' memory empty")
    vim.input("iChapter 7. The ")
    wait_for(lambda: idle(vim) and lua(vim, "return require('textgen').status().model") == "my-novel", timeout=10,
             what="a suggestion from the new model")
    wait_for(lambda: _ghost_text(vim) == expected, timeout=10, what=f"the ghost text {expected!r}")


def _ghost_text(nvim) -> str | None:
    g = ghost(nvim)
    return g.text if g else None


def test_the_training_job_leaves_a_core_to_the_editor(vim):
    """TensorFlow in the job gets all cores but one (on 2 cores, one thread: as fast as two for these
    models — bench/train_speed.py — and the editor keeps a core of its own)."""
    lua(vim, "require('textgen').setup(...)", SLOW)
    open_text(vim, NOVEL)
    job = start_training(vim, "TextGenTrain threads-novel")
    try:
        # Until its execve ends, the job's /proc environ is Neovim's (or empty): wait for the job's own.
        environ = wait_for(lambda: "TF_NUM_INTRAOP_THREADS" in (env := process_environ(job["pid"])) and env,
                           timeout=10, what="the training process's environment")
    finally:
        vim.command("TextGenTrainStop")
        wait_for(lambda: training(vim)["state"] == "cancelled", timeout=10, what="the job to end")
    assert environ["TF_NUM_INTRAOP_THREADS"] == str(max(1, len(os.sched_getaffinity(0)) - 1))
    assert environ["TF_NUM_INTEROP_THREADS"] == "1"


def test_training_again_while_it_runs_says_so_and_stop_leaves_everything_untouched(vim, models_dir,
                                                                                    tiny_model_dir):
    lua(vim, "require('textgen').setup(...)", SLOW)
    open_text(vim, NOVEL)
    before = sorted(p.name for p in models_dir.iterdir())
    model_in_use = lua(vim, "return require('textgen.config').get().model")
    vim.command(f"TextGenModel {tiny_model_dir}")
    engine_model = wait_for(lambda: (p := host_model_path(vim)) == str(tiny_model_dir) and p, what="the tiny model")
    job = start_training(vim, "TextGenTrain cancelled-novel")
    wait_for(lambda: (training(vim).get("percent") or 0) > 0, timeout=60, what="training to be under way")

    screen = Screen(vim)
    lua(vim, "require('textgen.train').QUIET_MS = 120000")     # no race with the 4 s it stays by default
    try:
        vim.command("TextGenTrain other")
        wait_for(lambda: "is already running" in messages(vim), what="the 'already running' message")
        percent = training(vim)["percent"]
        wait_for(lambda: training(vim)["percent"] > percent, timeout=60, what="more progress")
        assert "is already running" in screen.row(-1), screen.frames[-1][-1]    # not overwritten by it
    finally:
        screen.close()
        lua(vim, "require('textgen.train').QUIET_MS = 4000")
    assert training(vim)["pid"] == job["pid"] and training(vim)["name"] == "cancelled-novel"

    vim.command("TextGenTrainStop")
    wait_for(lambda: training(vim)["state"] == "cancelled", timeout=10, what="the job to end")
    wait_for(lambda: not is_running(job["pid"]), timeout=5, what="the training process to end")
    assert "training cancelled: nothing saved" in wait_for(lambda: messages(vim), what="messages")
    assert sorted(p.name for p in models_dir.iterdir()) == before
    assert lua(vim, "return require('textgen.config').get().model") == model_in_use == str(tiny_model_dir)
    assert host_model_path(vim) == engine_model


def test_no_training_process_survives_quitting_neovim_and_nothing_writes_a_traceback(tiny_model_dir, tmp_path):
    python, stderr_log = stderr_logging_python(tmp_path / "bin")     # the host's and the job's stderr
    home = tmp_path / "home"
    editor = start_nvim(shared_manifest(), home, {"model": str(tiny_model_dir), **SLOW},
                        models_dir=tmp_path / "models", python=python)
    try:
        open_text(editor, NOVEL)
        pid = start_training(editor)["pid"]
        # Right after jobstart the process may still be inside execve (the wrapper execs Python),
        # when /proc/PID/cmdline reads empty: wait for the command line rather than read it once.
        wait_for(lambda: "textgen_core" in Path(f"/proc/{pid}/cmdline").read_text(), timeout=10,
                 what="the training process to run textgen_core")
        wait_for(lambda: training(editor).get("initial_val_bpc"), timeout=60, what="training under way")
        quit_and_check_nothing_is_left(editor, home, stderr_log)
        assert not is_running(pid)
        assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    finally:
        try:
            editor.close()
        except Exception:
            pass


def test_no_training_process_survives_neovim_being_killed(tiny_model_dir, tmp_path):
    editor = start_nvim(shared_manifest(), tmp_path / "home", {"model": str(tiny_model_dir), **SLOW},
                        models_dir=tmp_path / "models")
    open_text(editor, NOVEL)
    pid = start_training(editor)["pid"]
    nvim_pid = editor.call("getpid")
    os.kill(nvim_pid, signal.SIGKILL)
    try:
        editor.close()
    except Exception:
        pass
    wait_for(lambda: not is_running(pid), timeout=10, what=f"training process {pid} to end after Neovim was killed")


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder (None) under `folder`, hidden ones too."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def one_message(nvim, words: str, timeout: float = 10) -> str:
    """The one line textgen said, once it says `words`; fails if it said more than one thing."""
    said = wait_for(lambda: words in (m := messages(nvim)) and m, timeout=timeout, what=f"a message with {words!r}")
    lines = [line for line in said.splitlines() if line.startswith("textgen: ") and "textgen: training '" not in line]
    assert len(lines) == 1, said
    return lines[0]


def expect_suggestions_from(nvim, model) -> None:
    """Typing in a new buffer shows the ghost text of `model`."""
    expected = fresh_completion(model, "the qu", DecodeOptions())[0].rstrip()
    nvim.input("<Esc>")
    wait_for(lambda: mode(nvim) == "n", what="normal mode")
    nvim.command("enew")
    nvim.input("ithe qu")
    wait_for(lambda: _ghost_text(nvim) == expected, timeout=10, what=f"the ghost text {expected!r} of {model.name}")


def test_a_training_job_killed_mid_way_is_reported_and_the_model_in_use_stays(vim, models_dir, tiny_model_dir,
                                                                              tiny_model):
    lua(vim, "require('textgen').setup(...)", SLOW)
    open_text(vim, NOVEL)
    vim.command("messages clear")
    vim.command(f"TextGenModel {tiny_model_dir}")
    wait_for(lambda: host_model_path(vim) == str(tiny_model_dir) and "loaded" in messages(vim),
             what="the tiny model and its announcement")
    vim.command("messages clear")
    models_before, tiny_before = tree(models_dir), tree(tiny_model_dir)
    job = start_training(vim, "TextGenTrain killed-novel")
    wait_for(lambda: (training(vim).get("percent") or 0) > 0, timeout=60, what="training to be under way")

    os.kill(job["pid"], signal.SIGKILL)
    said = one_message(vim, "training killed")
    assert said == "textgen: training killed (SIGKILL, e.g. out of memory); the model in use is unchanged"
    assert training(vim)["state"] == "failed" and not is_running(job["pid"])
    assert tree(models_dir) == models_before, "something was written in the models folder"
    assert tree(tiny_model_dir) == tiny_before
    assert lua(vim, "return require('textgen.config').get().model") == str(tiny_model_dir)
    assert host_model_path(vim) == str(tiny_model_dir)
    expect_suggestions_from(vim, tiny_model)


def test_a_full_disk_while_saving_is_reported_and_the_previous_model_stays(vim, models_dir, tiny_model_dir,
                                                                           tiny_model):
    """The disk fills up for the job only: a file size limit on its process (RLIMIT_FSIZE, as `ulimit
    -f` sets it) makes the kernel refuse the write of weights.npz, as a full disk would."""
    shutil.copytree(tiny_model_dir, models_dir / "full-disk")        # the model the training would replace
    models_before = tree(models_dir)
    lua(vim, "require('textgen').setup(...)", SHORTEST)
    try:
        open_text(vim, NOVEL)
        job = start_training(vim, "TextGenTrain full-disk")
        limit = (tiny_model_dir / "weights.npz").stat().st_size // 2
        resource.prlimit(job["pid"], resource.RLIMIT_FSIZE, (limit, limit))
        said = one_message(vim, "training failed", timeout=90)
        assert said.startswith("textgen: training failed: no room to save the model (File too large); "), said
        assert training(vim)["state"] == "failed"
        assert tree(models_dir) == models_before, "the previous model changed, or a half-written one is left"
        expect_suggestions_from(vim, tiny_model)
        assert host_model_path(vim) == str(tiny_model_dir)
    finally:
        shutil.rmtree(models_dir / "full-disk")


def test_a_read_only_models_folder_is_reported_and_nothing_is_lost(tiny_model_dir, tiny_model, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models / "mine")
    models_before = tree(models)
    home = tmp_path / "home"
    editor = start_nvim(shared_manifest(), home, {"model": "mine", **QUICK}, models_dir=models, unprivileged=True)
    try:
        open_text(editor, NOVEL)
        models.chmod(0o555)
        editor.command("TextGenTrain mine")
        said = one_message(editor, "cannot save")
        assert said.startswith("textgen: cannot save 'mine': its folder is read-only ("), said
        assert training(editor)["state"] == "idle"

        # Writable when the job starts, read-only by the time the trainer writes: it says so itself.
        models.chmod(0o755)
        editor.command("messages clear")
        start_training(editor, "TextGenTrain mine")
        models.chmod(0o555)
        said = one_message(editor, "not training", timeout=60)     # refused before the first step
        assert said.startswith("textgen: not training: cannot write the model folder (Permission denied): "), said
        assert tree(models) == models_before
        assert lua(editor, "return require('textgen.host').model.name") == "mine"
        expect_suggestions_from(editor, tiny_model)
    finally:
        models.chmod(0o755)
        editor.close()


def test_training_with_a_tensorflow_that_does_not_import_says_how_to_install_it(vim, models_dir, tmp_path):
    """A TensorFlow that is there (so the check before the job passes) but fails to import: the job says
    so. A Python with no TensorFlow at all is offered an install first (test_plugin_train_offer.py)."""
    fake = tmp_path / "without-tensorflow" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'tensorflow'\", name='tensorflow')\n")
    models_before = tree(models_dir)
    saved = lua(vim, "return vim.env.PYTHONPATH")
    lua(vim, "vim.env.PYTHONPATH = ...", str(fake.parent))
    try:
        open_text(vim, NOVEL)
        vim.command("TextGenTrain")
        said = one_message(vim, "TensorFlow", timeout=30)
        assert said.startswith("textgen: training needs TensorFlow; add it: make -C "), said    # fitted to one line
        status = vim.api.exec2("TextGenStatus", {"output": True})["output"]
        assert (f"training needs TensorFlow; add it: make -C {REPO} install-train "
                f"({PYTHON} cannot import it: No module named 'tensorflow')") in status, status
        assert training(vim)["state"] == "failed"
        assert tree(models_dir) == models_before
    finally:
        lua(vim, "vim.env.PYTHONPATH = ...", saved)


@pytest.mark.parametrize("text, expected", [
    ("", "this buffer holds 0 bytes; training needs at least 256 bytes"),
    ("ten bytes", "this buffer holds 10 bytes; training needs at least 256 bytes"),
    ("PK\x03\x04\x00\x00binary\x00" * 40, "this buffer looks binary"),
])
def test_a_buffer_that_cannot_be_trained_on_gets_one_clear_message(vim, text, expected):
    open_text(vim, text)
    vim.command("TextGenTrain")
    said = wait_for(lambda: "textgen: " in (m := messages(vim)) and m, what="a message")
    assert expected in said and len(said.strip().splitlines()) == 1
    assert training(vim)["state"] != "running"


def test_a_range_too_small_is_refused_even_in_a_big_buffer(vim):
    open_text(vim, NOVEL)
    vim.command("1,2TextGenTrain")
    assert "training needs at least 256 bytes" in wait_for(lambda: messages(vim), what="a message")


def test_a_crashing_training_job_shows_its_last_error_line(vim):
    lua(vim, "require('textgen').setup(...)", {"train_args": ["--hidden", "many"]})
    open_text(vim, NOVEL)
    vim.command("TextGenTrain")
    said = wait_for(lambda: "training crashed" in (m := messages(vim)) and m, timeout=30,
                    what="the crash message")
    assert "training crashed (exit code 2): error: argument --hidden: invalid int" in said
    status = vim.api.exec2("TextGenStatus", {"output": True})["output"]
    assert "invalid int value: 'many'" in status


def test_a_file_argument_that_matches_nothing_is_reported_by_the_trainer(vim):
    open_text(vim, NOVEL)
    vim.command("TextGenTrain no-such-notes-*.txt")
    said = wait_for(lambda: "not training" in (m := messages(vim)) and m, timeout=60, what="the error")
    assert "not training: no-such-notes-*.txt: no file matches" in said


def test_a_model_name_that_is_also_a_file_here_is_trained_on_and_the_progress_line_says_so(vim, tmp_path):
    # `:TextGenTrain notes2` with a file notes2 in the current folder: the file is text to train on
    # (files come after the name, and must exist); the line that shows while TensorFlow starts says
    # so, with the model's name, so that no one takes it for the name.
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes2").write_text(NOVEL)
    vim.command(f"cd {work}")
    open_text(vim, NOVEL)
    start_training(vim, "TextGenTrain notes2")
    try:
        line = lua(vim, "return require('textgen.train').job.progress_line")
        assert line.startswith("training 'work' on this buffer (")
        assert line.endswith(" and notes2: starting TensorFlow…")
    finally:
        vim.command("TextGenTrainStop")
        wait_for(lambda: training(vim)["state"] != "running", timeout=30, what="the job to stop")
    assert (work / "notes2").read_text() == NOVEL
    start_training(vim, "2,5TextGenTrain mine")
    try:
        line = lua(vim, "return require('textgen.train').job.progress_line")
        assert line.startswith("training 'mine' on lines 2–5 ("), line
    finally:
        vim.command("TextGenTrainStop")
        wait_for(lambda: training(vim)["state"] != "running", timeout=30, what="the job to stop")


def test_saving_inside_the_plugin_folder_or_under_a_bad_name_is_refused(vim):
    open_text(vim, NOVEL)
    vim.command(f"TextGenTrain {REPO}/models/mine")
    assert "not saving inside the plugin's own folder" in wait_for(lambda: messages(vim), what="a message")
    vim.command("messages clear")
    vim.command("TextGenTrain one two")
    assert "give one model name or folder to save as, not 2" in wait_for(lambda: messages(vim), what="a message")
    assert training(vim)["state"] != "running"


def test_the_default_name_comes_from_the_project_folder(vim, tmp_path):
    root = tmp_path / "Über Projekt (v2)"
    (root / ".git").mkdir(parents=True)
    (root / "src").mkdir()
    vim.command(f"edit {root / 'src' / 'notes.txt'}")
    assert lua(vim, "return require('textgen.save_place').project_name(0)") == "ber-Projekt-v2"
    assert lua(vim, "return require('textgen.save_place').sanitise('..hidden')") == "hidden"


def _project_with_files(folder: Path) -> dict[str, str]:
    (folder / "src").mkdir(parents=True)
    files = {"README.md": "# my project\n", "src/main.py": "print('hi')\n", "notes.md": NOVEL}
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


def test_training_into_the_project_folder_is_refused_before_it_starts_and_nothing_is_deleted(vim, tmp_path,
                                                                                          tiny_model_dir):
    project = tmp_path / "project"
    files = _project_with_files(project)
    vim.command(f"cd {project} | edit notes.md")
    vim.command("TextGenTrain .")
    said = wait_for(lambda: "not training" in (m := messages(vim)) and m, timeout=60, what="the refusal")
    assert "not training: not saving a model over README.md, notes.md, src/ in . (" in said
    assert training(vim)["state"] == "failed"
    assert all((project / name).read_text() == text for name, text in files.items())
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "notes.md", "src"]

    models = tmp_path / "my models"            # a folder of models is not a model folder
    for name in ("novel", "code"):
        shutil.copytree(tiny_model_dir, models / name)
    vim.command("messages clear")
    vim.command(f"TextGenTrain {str(models).replace(' ', chr(92) + ' ')}")
    said = wait_for(lambda: "not training" in (m := messages(vim)) and m, timeout=60, what="the refusal")
    assert "not training: not saving a model over code/, novel/ in " in said
    assert sorted(p.name for p in models.iterdir()) == ["code", "novel"]
    assert all((models / name / "weights.npz").exists() for name in ("novel", "code"))


def test_a_path_with_dotdot_is_taken_as_written_by_train_and_by_model(vim, tmp_path):
    work = tmp_path / "work" / "sub"
    work.mkdir(parents=True)
    vim.command(f"cd {work}")
    open_text(vim, NOVEL)
    start_training(vim, "TextGenTrain ../../saved")
    wait_for(lambda: training(vim)["state"] == "done", timeout=120, what="training to end")
    saved = tmp_path / "saved"
    assert (saved / "config.json").exists() and (saved / "weights.npz").exists()
    wait_for(lambda: host_model_path(vim) == str(saved), timeout=30, what="the trained model in use")

    vim.command("TextGenModel default")
    wait_for(lambda: host_model_path(vim) != str(saved), timeout=30, what="another model")
    vim.command("cd ..")                       # a relative path is read from Neovim's current folder
    vim.command("messages clear")
    vim.command("TextGenModel ../saved")
    wait_for(lambda: host_model_path(vim) == str(saved), timeout=30, what="the model named through '..'")
    assert "loaded" in messages(vim)
