"""End to end: training on demand. A real Neovim whose host runs in a real virtual environment with the
base install only (numpy, pynvim, this repository; no TensorFlow, no Keras, no pip): :TextGenTrain
checks for TensorFlow, offers to install it through vim.ui.select (Neovim's own list, answered as a
user answers it, or a user's own picker), and a no changes nothing; :checkhealth says training is
unavailable and which command adds it. The install itself downloads 635 MB and is not run here: a yes
starts the real pip job, which fails at once in a venv without pip, as a failed install does, or, in a
venv with pip, waits on a package index that never answers while progress shows and is cancelled."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nvim_harness import (
    REPO,
    Screen,
    lua,
    messages,
    mode,
    processes_started_for,
    shared_manifest,
    start_nvim,
    suggest,
    type_and_wait,
    wait_for,
)

# Wide enough for the longest message in full (a path to the venv, then the command).
COLUMNS = 320
NOVEL = "".join(f"Chapter {i}. The lighthouse keeper counted the ships at dawn.\n" for i in range(20))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nvim-home")


@pytest.fixture(scope="module")
def nvim(tiny_model_dir, python_without_training, home):
    editor = start_nvim(shared_manifest(), home, {"model": str(tiny_model_dir), "learn": False},
                        python=python_without_training, columns=COLUMNS)
    yield editor
    editor.close()


@pytest.fixture
def vim(nvim, tiny_model_dir, python_without_training):
    nvim.input("<C-\\><C-n><Esc>")
    wait_for(lambda: mode(nvim) == "n", what="normal mode")
    lua(nvim, "require('textgen.train_deps').stop(); require('textgen.train').last = nil")
    nvim.command("silent! %bwipeout! | messages clear")
    lua(nvim, "vim.g.textgen = ...; require('textgen').setup({})",
        {"model": str(tiny_model_dir), "learn": False, "python": str(python_without_training)})
    lua(nvim, "_G.neovims_select = _G.neovims_select or vim.ui.select; vim.ui.select = _G.neovims_select")
    return nvim


@pytest.fixture
def screen(vim):
    seen = Screen(vim, columns=COLUMNS)
    yield seen
    seen.close()


def has_no_tensorflow(python: Path) -> bool:
    """Whether `python` really cannot import TensorFlow (the premise of every test here)."""
    return subprocess.run([python, "-c", "import tensorflow"], capture_output=True).returncode != 0


def open_text(nvim, text: str) -> None:
    nvim.command("enew")
    nvim.current.buffer[:] = text.splitlines()


def offer_on_screen(screen: Screen) -> list[str]:
    """The offer as Neovim's own list shows it at the bottom of the screen: question, choices, prompt
    (the question fits on one line of COLUMNS)."""
    return wait_for(lambda: "2: Not now" in screen.row(-2) and [screen.row(i) for i in range(-4, 0)],
                    what="the offer to install TensorFlow")


def textgen_lines(nvim) -> list[str]:
    return [line for line in messages(nvim).splitlines() if line.startswith("textgen: ")]


def jobs_of_textgen(home: Path) -> list[str]:
    """The running processes of the test Neovim that are a training or a pip job (or pip's children)."""
    return [p for p in processes_started_for(home) if "textgen_core" in p or "pip" in p]


def expect_ghost_text(nvim, tiny_model) -> None:
    """Typing in a new buffer shows the model's suggestion: the editor works as before."""
    nvim.command("enew")
    type_and_wait(nvim, "ithe qu", suggest(tiny_model, "the qu"))
    nvim.input("<Esc>")


def pip_command(python: Path) -> str:
    return f"{python} -m pip install -e '{REPO}[train]'"


def test_declining_the_offer_changes_nothing_and_says_how_to_add_training_later(vim, screen, home, tiny_model,
                                                                              python_without_training):
    python = python_without_training
    assert has_no_tensorflow(python)
    open_text(vim, NOVEL)
    vim.command("TextGenTrain")
    offer = offer_on_screen(screen)
    assert offer[:3] == [
        f"textgen: training needs TensorFlow and Keras, which {python} lacks. Install them there "
        "(635 MB download, 2.2 GB on disk, about a minute on a fast connection)?",
        "1: Install now, in the background (:TextGenTrainStop cancels)",
        "2: Not now"], offer

    vim.input("2<CR>")
    wait_for(lambda: mode(vim) == "n" and textgen_lines(vim), what="the answer to be taken")
    expect_ghost_text(vim, tiny_model)                 # meanwhile any job started would have said something
    assert textgen_lines(vim) == [
        f"textgen: training stays off; to add TensorFlow and Keras later: {pip_command(python)}"]
    assert lua(vim, "return require('textgen').status().training") == {"state": "idle", "text": ""}
    assert lua(vim, "local d = require('textgen.train_deps'); return {d.pending == nil, d.last == nil}") == [True, True]
    assert lua(vim, "return require('textgen.train').last") is None          # no training ended, none runs
    assert jobs_of_textgen(home) == []


def test_a_place_that_would_be_refused_is_refused_before_tensorflow_is_offered(vim, screen, home, tmp_path):
    # The user's folder, and a path under a file: refused in one line before the offer of a 2 GB
    # install, which would be for nothing; their files untouched.
    mine = tmp_path / "my folder"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    (tmp_path / "afile.txt").write_text("a file")
    open_text(vim, NOVEL)
    for place, said in [(mine, "textgen: not training: not saving a model over keep.txt in "),
                        (tmp_path / "afile.txt" / "sub", "textgen: cannot save 'sub': ")]:
        vim.command("messages clear")
        vim.command(f"TextGenTrain {str(place).replace(' ', chr(92) + ' ')}")
        line = wait_for(lambda: textgen_lines(vim), what="the refusal")
        assert len(line) == 1 and line[0].startswith(said), line
        assert "2: Not now" not in screen.row(-2)
        assert lua(vim, "return require('textgen.train_deps').pending") is None
    assert "afile.txt is a file, not a folder" in line[0]
    assert (mine / "keep.txt").read_text() == "mine" and sorted(p.name for p in mine.iterdir()) == ["keep.txt"]
    assert (tmp_path / "afile.txt").read_text() == "a file"
    assert lua(vim, "return require('textgen').status().training")["state"] == "failed"
    assert jobs_of_textgen(home) == []


def test_checkhealth_says_training_is_unavailable_and_names_the_command(vim, python_without_training):
    python = python_without_training
    assert has_no_tensorflow(python)
    vim.command("checkhealth textgen")
    try:
        report = wait_for(lambda: (text := "\n".join(vim.current.buffer[:])) and "textgen: training" in text
                          and "ghost text" in text and text, what="the health report")
    finally:
        vim.command("bwipeout")
    section = report.split("textgen: training ~", 1)[1].split("~", 1)[0]
    assert f"WARNING training is unavailable: {python} lacks TensorFlow and Keras (suggestions work without it)" \
        in section, section
    assert f"Add it (635 MB download, 2.2 GB on disk): {pip_command(python)}" in section, section
    assert ":TextGenTrain offers to install it for you." in section, section


def test_accepting_the_offer_starts_pip_and_its_failure_says_what_to_run_by_hand(vim, screen, home, tiny_model,
                                                                                python_without_training):
    """A yes starts the real pip job with this venv's Python; that venv has no pip, so it fails at once
    (as an install without a network fails later): one line with the command to run by hand and pip's
    last line, pip's lines in :TextGenStatus, and no training."""
    python = python_without_training
    open_text(vim, NOVEL)
    vim.command("TextGenTrain")
    offer_on_screen(screen)
    vim.input("1<CR>")
    said = wait_for(lambda: (lines := textgen_lines(vim)) and lines, what="the outcome of the install")
    assert said == [f"textgen: installing TensorFlow failed; run by hand: {pip_command(python)} "
                    f"(pip: {python}: No module named pip)"], said
    status = vim.api.exec2("TextGenStatus", {"output": True})["output"]
    assert (f"install of TensorFlow failed (exit code 1: {python}: No module named pip); "
            f"by hand: {pip_command(python)}") in status, status
    assert f"  | {python}: No module named pip" in status, status
    assert lua(vim, "return require('textgen').status().training") == {"state": "idle", "text": ""}
    assert lua(vim, "return require('textgen.train').last") is None
    expect_ghost_text(vim, tiny_model)
    assert jobs_of_textgen(home) == []


def test_a_users_own_picker_asks_and_stop_withdraws_the_question(vim, home):
    """vim.ui.select as a picker plugin replaces it (answering later, from a callback): textgen asks
    through it; while it is open a second :TextGenTrain is told to answer first, :TextGenTrainStop
    withdraws the request, and a yes that comes after that starts nothing."""
    lua(vim, """
        vim.ui.select = function(items, opts, on_choice)
          _G.asked = { items = items, prompt = opts.prompt, kind = opts.kind }
          _G.answer = function(i) on_choice(items[i], i) end
        end
    """)
    open_text(vim, NOVEL)
    vim.command("TextGenTrain")
    asked = wait_for(lambda: lua(vim, "return _G.asked"), what="the picker to be asked")
    assert asked["kind"] == "textgen.install_training"
    assert asked["items"] == ["Install now, in the background (:TextGenTrainStop cancels)", "Not now"]
    assert "training needs TensorFlow and Keras" in asked["prompt"]

    vim.command("TextGenTrain")
    wait_for(lambda: "answer whether to install TensorFlow first" in messages(vim), what="the 'answer first' line")
    vim.command("TextGenTrainStop")
    wait_for(lambda: "training cancelled before it started" in messages(vim), what="the request withdrawn")
    lua(vim, "_G.answer(1)")                                    # a yes, too late
    assert lua(vim, "return require('textgen.train_deps').pending") is None
    assert lua(vim, "return require('textgen').status().training") == {"state": "idle", "text": ""}
    assert jobs_of_textgen(home) == []
    assert textgen_lines(vim) == ["textgen: answer whether to install TensorFlow first",
                                  "textgen: training cancelled before it started"]


def test_a_python_outside_a_virtual_environment_gets_the_command_not_an_offer(vim, screen, home):
    """Nothing is installed into a system Python: the user is told the command instead."""
    system_python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not has_no_tensorflow(system_python):
        pytest.skip(f"{system_python} has TensorFlow")
    lua(vim, "vim.g.textgen = vim.tbl_extend('force', vim.g.textgen, { python = ... })", str(system_python))
    open_text(vim, NOVEL)
    vim.command("TextGenTrain")
    said = wait_for(lambda: (lines := textgen_lines(vim)) and lines, what="the message")
    assert said == [f"textgen: training needs TensorFlow and Keras, which {system_python} lacks; it is not a virtual "
                    f"environment, so textgen installs nothing there: run {pip_command(system_python)}"], said
    assert not any("Not now" in row for row in screen.frames[-1]), "an offer was shown"
    assert mode(vim) == "n" and lua(vim, "return require('textgen.train_deps').pending") is None
    assert jobs_of_textgen(home) == []


@pytest.fixture
def silent_index():
    """A package index that takes connections and never answers (as behind a dead proxy): its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"http://127.0.0.1:{server.getsockname()[1]}/simple"
    server.close()


def test_the_install_shows_its_progress_and_stop_cancels_it(vim, screen, home, python_with_pip_without_training,
                                                            silent_index):
    """A yes starts the real pip of a venv with the base install; pip is sent (by the environment, the
    command is textgen's own) to an index that never answers, so it stays at its first steps: progress
    and time show on the command line and in status(), :TextGenTrain waits its turn, and
    :TextGenTrainStop ends pip and all it started, with one line and no training."""
    python = python_with_pip_without_training
    assert has_no_tensorflow(python)
    lua(vim, "vim.g.textgen = vim.tbl_extend('force', vim.g.textgen, { python = ... })", str(python))
    pip_env = {"PIP_INDEX_URL": silent_index, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "",
               "PIP_EXTRA_INDEX_URL": "", "PIP_DEFAULT_TIMEOUT": "120"}
    lua(vim, "for k, v in pairs(...) do vim.env[k] = v end", pip_env)
    try:
        open_text(vim, NOVEL)
        vim.command("TextGenTrain")
        offer_on_screen(screen)
        vim.input("1<CR>")
        status = wait_for(lambda: (t := lua(vim, "return require('textgen').status()"))["training"]["state"]
                          == "installing" and t, what="the install to start")
        assert status["text"].startswith("installing TensorFlow 0:0"), status
        # pip's own lines, then the time going on while pip waits.
        progress = re.compile(r"textgen: installing TensorFlow for training 0:\d\d · :TextGenTrainStop cancels · "
                              rf"(Obtaining file://{re.escape(str(REPO))}|Installing build dependencies)")
        wait_for(lambda: progress.match(screen.row(-1)), what="pip's progress on the command line")
        wait_for(lambda: "installing TensorFlow for training 0:02 · " in screen.row(-1), timeout=10,
                 what="the time so far to go on")
        assert jobs_of_textgen(home), "no pip process"
        said = vim.api.exec2("TextGenStatus", {"output": True})["output"]
        assert "training: installing TensorFlow for training 0:0" in said and f"({pip_command(python)})" in said, said

        vim.command("TextGenTrain")
        wait_for(lambda: "textgen: installing TensorFlow first (0:0" in messages(vim), what="the 'first' line")
        vim.command("TextGenTrainStop")
        wait_for(lambda: "installing TensorFlow cancelled" in messages(vim), what="the cancel message")
        wait_for(lambda: not jobs_of_textgen(home), timeout=10, what="pip and its children to end")
    finally:
        lua(vim, "for k in pairs(...) do vim.env[k] = nil end", pip_env)
    assert textgen_lines(vim)[-1] == \
        "textgen: installing TensorFlow cancelled: training did not start; :TextGenTrain offers it again"
    assert lua(vim, "return require('textgen').status().training") == {"state": "idle", "text": ""}
    assert lua(vim, "return require('textgen.train').last") is None
