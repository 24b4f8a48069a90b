"""End to end: :TextGenStatus, :TextGenModel, :TextGenToggle, setup(), :checkhealth, :help, and a
Neovim without a loadable model, in a real Neovim with the plugin loaded as a user would."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_TEXT
from tests.nvim_harness import (
    NVIM,
    REPO,
    buffer_text,
    ghost,
    health_report,
    host_pid,
    idle,
    lua,
    messages,
    mode,
    not_at_a_prompt,
    shared_manifest,
    start_nvim,
    wait_for,
)
from textgen_core.decode import DecodeOptions
from textgen_core.serve.engine import fresh_completion


@pytest.fixture(scope="module")
def models_dir(tiny_model_dir, tmp_path_factory):
    """A user model folder holding the tiny model under the name 'mini'."""
    folder = tmp_path_factory.mktemp("user-models")
    shutil.copytree(tiny_model_dir, folder / "mini")
    return folder


@pytest.fixture(scope="module")
def nvim(tiny_model_dir, models_dir, tmp_path_factory):
    # Wide: a message names a model folder by its whole path, as given (a temporary folder's is long).
    editor = start_nvim(shared_manifest(), tmp_path_factory.mktemp("nvim-home"), {"model": str(tiny_model_dir)},
                        models_dir=models_dir, columns=200)
    yield editor
    editor.close()


@pytest.fixture
def vim(nvim, tiny_model_dir):
    nvim.input("<Esc>")
    wait_for(lambda: mode(nvim) == "n", what="normal mode")
    nvim.command("silent! %bwipeout! | messages clear")
    lua(nvim, "vim.g.textgen = ...; require('textgen').setup({})", {"model": str(tiny_model_dir)})
    wait_for(lambda: idle(nvim), what="textgen to be idle")
    return nvim


def output_of(nvim, command: str) -> str:
    not_at_a_prompt(nvim)
    return nvim.api.exec2(command, {"output": True})["output"]


def test_status_names_the_model_its_quality_data_and_engine(vim, tiny_model):
    expected = fresh_completion(tiny_model, "the qu", DecodeOptions())[0].rstrip()
    vim.input("ithe qu")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected and idle(vim), what="a served request")
    # The engine may still be learning what was typed when the editor is idle: wait until it is done too.
    def status_when_idle() -> str:
        text = output_of(vim, "TextGenStatus")
        return text if "engine: running, idle" in text else ""

    status = wait_for(status_when_idle, what=":TextGenStatus with the engine idle", interval=0.05)
    assert "suggestions while typing on" in status
    assert f"model: tiny ({tiny_model.path})" in status
    assert "1×64 GRU" in status
    assert f"val bpc {tiny_model.info.val_bpc:.3f}" in status
    assert "trained on tiny.txt" in status
    assert re.search(r"engine: running, idle; \d+ served \(\d+ foreseen while typing\), 0 errors; "
                     r"last latency [\d.]+ ms", status), status
    assert "this buffer: " in status


def test_status_for_statuslines_never_waits_for_the_host(vim):
    """The host is stopped (SIGSTOP) while the statusline asks: a status that asked the host would
    wait for its answer (host.ANSWER_TIMEOUT_MS), or for ever; this one answers at once."""
    lua(vim, "require('textgen.host').warm_up(require('textgen.config').get())")
    wait_for(lambda: lua(vim, "return require('textgen').status().model") == "tiny", what="the model loaded")
    pid = wait_for(lambda: host_pid(vim), what="the host's process")
    timeout_ms = lua(vim, "return require('textgen.host').ANSWER_TIMEOUT_MS")
    os.kill(pid, signal.SIGSTOP)
    resume = threading.Timer(10, os.kill, (pid, signal.SIGCONT))      # should a status wait for ever
    resume.start()
    try:
        wait_for(lambda: _process_state(pid) == "T", what="the host to be stopped")
        status, elapsed_ms = lua(vim, """
            local started = vim.uv.hrtime()
            local status = require('textgen').status()
            return { status, (vim.uv.hrtime() - started) / 1e6 }
        """)
        assert _process_state(pid) == "T", "the host ran meanwhile"
    finally:
        resume.cancel()
        os.kill(pid, signal.SIGCONT)
    assert elapsed_ms < timeout_ms / 2, f"status() took {elapsed_ms:.0f} ms with the host stopped"
    assert status["enabled"] is True and status["auto_trigger"] is True
    assert status["model"] == "tiny"


def _process_state(pid: int) -> str:
    """The state letter of a process in /proc (R running, S sleeping, T stopped, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_model_command_completes_model_names(vim):
    assert vim.funcs.getcompletion("TextGenModel mi", "cmdline") == ["mini"]
    assert "mini" in vim.funcs.getcompletion("TextGenModel ", "cmdline")


def test_model_command_switches_the_model(vim, tiny_model_dir):
    vim.command("TextGenModel mini")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "mini",
             what="the model 'mini' to load")
    assert vim.vars["textgen"]["model"] == "mini"
    assert "textgen: model 'mini' loaded (1×64 GRU, val bpc" in messages(vim)
    vim.command(f"TextGenModel {tiny_model_dir}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "tiny")


def test_status_of_an_averaged_model_says_so_and_names_the_text_it_was_fitted_to(vim, tiny_model_dir, tmp_path):
    from textgen_core.train.averaging import Member, average_models
    from textgen_core.train.held_out import TrainingText

    average_models([Member(str(tiny_model_dir), 1), Member(str(tiny_model_dir), 1)], tmp_path / "soup",
                   [TrainingText("fables.txt", TINY_TEXT.encode())])
    vim.command(f"TextGenModel {tmp_path / 'soup'}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "soup",
             what="the averaged model to load")
    assert "an average of 2 models fitted to fables.txt" in output_of(vim, "TextGenStatus")
    vim.command(f"TextGenModel {tiny_model_dir}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "tiny")


def test_status_shows_the_corpus_ngram_or_that_it_is_missing(vim, tiny_model_dir, tmp_path):
    from tests.core.test_cli import textgen

    (tmp_path / "notes.txt").write_text(TINY_TEXT)
    assert textgen("ngram", tiny_model_dir, tmp_path / "notes.txt", "--out", tmp_path / "counted").returncode == 0
    vim.command(f"TextGenModel {tmp_path / 'counted'}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "counted",
             what="the model with an n-gram to load")
    assert re.search(r"corpus n-gram: 0\.\d M contexts counted in 1 files \(\d+\.\d KB\)",
                     output_of(vim, "TextGenStatus"))
    shutil.rmtree(tmp_path / "counted" / "ngram")
    vim.command(f"TextGenModel {tiny_model_dir}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "tiny")
    vim.command(f"TextGenModel {tmp_path / 'counted'}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "counted")
    # Counted from other files than the default model's corpus: the host cannot count it again.
    assert "corpus n-gram: not in the model's folder; suggestions come without it" in output_of(vim, "TextGenStatus")
    assert "WARNING its corpus n-gram is not in the model's folder" in health_report(vim)
    vim.command(f"TextGenModel {tiny_model_dir}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "tiny")


def test_a_buffer_is_mixed_by_the_weights_of_its_filetypes_kind(vim, tiny_model_dir, tmp_path):
    """The filetype reaches the host with every request: a Rust buffer gets the weights fitted on Rust,
    a TypeScript one (a kind the model has none for) and one of no filetype those fitted on all."""
    from tests.core.test_text_kinds import fit_kinds_model
    from textgen_core import load_model

    folder = fit_kinds_model(tiny_model_dir, tmp_path)
    model = load_model(folder)
    vim.command(f"TextGenModel {folder}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "kinds",
             what="the model with weights per kind to load")
    from textgen_core.model.text_kinds import KINDS

    assert lua(vim, "return require('textgen.config').KINDS") == list(KINDS)     # the option's choices
    lua(vim, "vim.g.textgen = vim.tbl_extend('force', vim.g.textgen, { kinds = { svelte = 'rust', lua = 'c' } })")
    for filetype, kind, said in (("rust", "rust", "rust text"), ("typescript", None, "all of the model's text"),
                                 ("svelte", "rust", "rust text"), ("lua", None, "all of the model's text"),
                                 ("", None, "all of the model's text")):
        vim.command("enew!")
        vim.command(f"setlocal filetype={filetype}")
        expected = fresh_completion(model.for_kind(kind), "the qu", DecodeOptions())[0].rstrip()
        vim.input("ithe qu")
        wait_for(lambda expected=expected: (g := ghost(vim)) and g.text == expected and idle(vim),
                 what=f"a suggestion in {filetype!r}")
        vim.input("<Esc>")
        wait_for(lambda: mode(vim) == "n", what="normal mode")
        status = output_of(vim, "TextGenStatus")
        assert "mixing weights fitted per kind of text (by filetype): lua, rust" in status
        assert f"the last suggestion was mixed by the weights fitted on {said}" in status, status
    lua(vim, "vim.g.textgen = vim.tbl_extend('force', vim.g.textgen, { kinds = { svelte = 'javascirpt' } })")
    said = output_of(vim, "TextGenStatus")
    assert 'option problem: g:textgen.kinds["svelte"] must be one of python, lua, help' in said
    vim.command(f"TextGenModel {tiny_model_dir}")
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).name") == "tiny")
    assert "mixing weights fitted per kind" not in output_of(vim, "TextGenStatus")


def test_model_command_with_an_unknown_name_says_why_and_keeps_the_model(vim, tiny_model):
    vim.command("TextGenModel no-such-model")
    wait_for(lambda: "no model named 'no-such-model'" in messages(vim), what="the error message")
    assert vim.vars["textgen"]["model"] == str(tiny_model.path)
    expected = fresh_completion(tiny_model, "the qu", DecodeOptions())[0].rstrip()
    vim.input("ithe qu")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected, what="suggestions from the current model")


class _RunsACommand:
    """Unpickling this runs `touch` on its path: a model file that would execute code if unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _rewrite_weights(folder: Path, **arrays) -> None:
    with np.load(folder / "weights.npz") as npz:
        weights = {name: npz[name] for name in npz.files}
    weights.update(arrays)
    with open(folder / "weights.npz", "wb") as f:
        np.savez(f, **weights)


def _rewrite_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def _missing_folder(folder: Path, marker: Path) -> str:
    shutil.rmtree(folder)
    return str(folder)


def _missing_weights(folder: Path, marker: Path) -> str:
    (folder / "weights.npz").unlink()
    return str(folder)


def _truncated_weights(folder: Path, marker: Path) -> str:
    data = (folder / "weights.npz").read_bytes()
    (folder / "weights.npz").write_bytes(data[: len(data) // 2])
    return str(folder)


def _pickled_object(folder: Path, marker: Path) -> str:
    payload = np.empty(1, dtype=object)
    payload[0] = _RunsACommand(marker)
    _rewrite_weights(folder, embedding=payload)
    return str(folder)


def _shapes_unlike_config(folder: Path, marker: Path) -> str:
    _rewrite_config(folder, lambda c: c["architecture"].update(hidden=32))
    return str(folder)


def _unknown_format_version(folder: Path, marker: Path) -> str:
    _rewrite_config(folder, lambda c: c.update(version=99))
    return str(folder)


def _nan_weights(folder: Path, marker: Path) -> str:
    with np.load(folder / "weights.npz") as npz:
        kernel = npz["dense/kernel"].copy()
    kernel[3, 5] = np.nan
    _rewrite_weights(folder, **{"dense/kernel": kernel})
    return str(folder)


# What :TextGenModel is given, and what the one message must say.
BROKEN_MODELS = {
    "missing-folder": (_missing_folder, "missing-folder: no such model folder"),
    "missing-weights": (_missing_weights, "missing-weights/weights.npz: missing"),
    "truncated": (_truncated_weights, "truncated/weights.npz: unreadable or truncated"),
    "pickled": (_pickled_object, "pickled/weights.npz: refused (holds object, not plain numbers)"),
    "shapes": (_shapes_unlike_config, "shapes/weights.npz: array 'gru0/kernel' has shape (16, 192), config.json says"),
    "version": (_unknown_format_version, "version/config.json: unsupported format version 99"),
    "nan": (_nan_weights, "nan/weights.npz: array 'dense/kernel' holds NaN or infinite values"),
}


@pytest.mark.parametrize("kind", list(BROKEN_MODELS))
def test_a_broken_model_gets_one_message_naming_the_problem_and_the_model_in_use_stays(vim, tiny_model,
                                                                                        tmp_path, kind):
    damage, expected = BROKEN_MODELS[kind]
    folder = tmp_path / kind
    shutil.copytree(tiny_model.path, folder)
    marker = tmp_path / "code-was-run"
    name = damage(folder, marker)
    vim.command(f"TextGenModel {name}")
    said = wait_for(lambda: "textgen:" in (m := messages(vim)) and m, what="the message")
    lines = [line for line in said.splitlines() if "textgen:" in line]
    assert len(lines) == 1 and expected in lines[0], lines
    assert lines[0].startswith("textgen: ") and "Traceback" not in said and "Error" not in said
    assert f"could not load '{name}' (numpy): " in output_of(vim, "TextGenStatus")

    assert vim.vars["textgen"]["model"] == str(tiny_model.path)
    assert lua(vim, "return require('textgen.host').model.path") == str(tiny_model.path)
    expected_ghost = fresh_completion(tiny_model, "the qu", DecodeOptions())[0].rstrip()
    vim.input("ithe qu")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected_ghost, what="suggestions from the model in use")
    assert not marker.exists(), "loading the model ran code"
    assert messages(vim).count("textgen:") == 1


def test_the_model_in_use_whose_folder_breaks_keeps_serving_from_memory_and_says_why(vim, tiny_model, tmp_path):
    folder = tmp_path / "in use"
    shutil.copytree(tiny_model.path, folder)
    vim.command(f"TextGenModel {folder}")          # one argument: its spaces are its own
    wait_for(lambda: lua(vim, "return (require('textgen.host').model or {}).path") == str(folder),
             what="the copy in use")
    (folder / "weights.npz").write_bytes(b"broken")
    vim.command("messages clear")
    vim.command(f"TextGenModel {folder}")
    said = wait_for(lambda: "still serving" in (m := messages(vim)) and m, what="the message")
    assert f"{folder}/weights.npz: unreadable or truncated" in said and said.count("textgen:") == 1, said
    assert "its folder no longer loads" in output_of(vim, "TextGenStatus")
    vim.input("ithe qu")
    expected = fresh_completion(tiny_model, "the qu", DecodeOptions())[0].rstrip()
    wait_for(lambda: (g := ghost(vim)) and g.text == expected, what="suggestions from the copy in memory")


def test_a_model_path_is_shown_as_the_user_wrote_it(vim, tiny_model, tmp_path):
    broken = tmp_path / "home" / "models" / "novel"
    shutil.copytree(tiny_model.path, broken)
    (broken / "weights.npz").unlink()
    vim.command(f"cd {tmp_path / 'home' / 'models'}")
    vim.command("TextGenModel ../")             # a folder above, named first (no model: refused)
    wait_for(lambda: "textgen:" in messages(vim), what="the first refusal")
    vim.command("messages clear")
    vim.command(f"cd {tmp_path / 'home'}")
    vim.command("TextGenModel ./models/novel")
    said = wait_for(lambda: "textgen:" in (m := messages(vim)) and m, what="the message")
    # each message shows its own model's path as written, not an earlier one's inside it (`..//novel`)
    assert "textgen: ./models/novel/weights.npz: missing" in said, said


def test_options_of_the_wrong_shape_say_which_shape_is_meant(vim):
    """A new user's trial: `filetypes = { 'python' }` was said to need "true or false" (for [1]),
    setup('abc') threw vim/shared.lua's error, and a read-only buffer was called "not modifiable"."""
    problems = lua(vim, "return select(2, require('textgen.config').validate({ filetypes = { 'python' } }))")
    assert problems == ["g:textgen.filetypes is a table of filetype = true/false: write { python = true }, "
                        "not a list"], problems
    lua(vim, "require('textgen').setup('abc')")
    wait_for(lambda: "setup() takes a table of options, such as { model = 'notes' } (got \"abc\")" in messages(vim),
             what="setup()'s message")
    assert "Error" not in messages(vim) and vim.vars["textgen"]["model"]
    vim.command("setlocal readonly")
    vim.command("TextGenComplete")
    wait_for(lambda: "no suggestions here: the buffer is read-only" in messages(vim), what="why not")


def test_several_bad_options_are_said_in_one_line(tiny_model_dir, tmp_path):
    editor = start_nvim(shared_manifest(), tmp_path / "home", {"model": str(tiny_model_dir), "debounce_ms": -1,
                                                               "mid_line": "sometimes", "max_chars": "many"},
                        columns=400)
    try:
        editor.input("ithe")
        said = wait_for(lambda: "option problems" in (m := messages(editor)) and m, what="the message")
        lines = [line for line in said.splitlines() if "textgen:" in line]
        assert len(lines) == 1 and lines[0].startswith("textgen: 3 option problems (:TextGenStatus lists them): "), said
        status = output_of(editor, "TextGenStatus")
        for name in ("debounce_ms", "mid_line", "max_chars"):
            assert f"option problem: g:textgen.{name} must be" in status
    finally:
        editor.close()


def test_toggle_turns_suggestions_while_typing_off_and_on(vim, tiny_model):
    vim.command("TextGenToggle")
    assert vim.vars["textgen"]["auto_trigger"] is False
    asked = lua(vim, "return require('textgen.suggestion').stats.requests")
    vim.input("ithe qu")
    wait_for(lambda: buffer_text(vim) == "the qu" and idle(vim))
    assert ghost(vim) is None
    assert lua(vim, "return require('textgen.suggestion').stats.requests") == asked
    vim.command("TextGenToggle")
    assert vim.vars["textgen"]["auto_trigger"] is True
    expected = fresh_completion(tiny_model, "the qui", DecodeOptions())[0].rstrip()
    vim.input("i")
    wait_for(lambda: (g := ghost(vim)) and g.text == expected, what="suggestions again")


def test_setup_merges_deeply_into_g_textgen(vim):
    lua(vim, "require('textgen').setup({ filetypes = { markdown = false }, keys = { dismiss = false } })")
    lua(vim, "require('textgen').setup({ filetypes = { text = false } })")
    config = lua(vim, "return require('textgen.config').get()")
    assert config["filetypes"]["markdown"] is False and config["filetypes"]["text"] is False
    assert config["filetypes"]["*"] is True and config["keys"]["accept"] == "<Tab>"
    assert vim.funcs.maparg("<C-]>", "i") == ""
    assert vim.vars["textgen"]["filetypes"] == {"markdown": False, "text": False}


def test_a_bad_option_is_reported_once_and_its_default_used(vim):
    vim.command("let g:textgen.debounce_ms = 'soon'")
    default = lua(vim, "return require('textgen.config').defaults.debounce_ms")
    for _ in range(3):
        assert lua(vim, "return require('textgen.config').get().debounce_ms") == default
    wait_for(lambda: "g:textgen.debounce_ms must be a whole number" in messages(vim))
    assert messages(vim).count("g:textgen.debounce_ms") == 1


def test_vimscript_booleans_work(vim):
    vim.command("let g:textgen.auto_trigger = 0 | let g:textgen.multiline = v:true")
    config = lua(vim, "return require('textgen.config').get()")
    assert config["auto_trigger"] is False and config["multiline"] is True


def test_checkhealth_finds_everything_in_order(vim):
    report = health_report(vim)
    assert "textgen: Neovim and the Python host" in report
    for expected in ("Python of textgen's own host", "the host is running", "pynvim", "numpy", "textgen_core",
                     "n-gram lookups: the compiled helper", "GRU steps: the compiled helper",
                     "training is available: TensorFlow", "g:textgen is valid",
                     "model '"):
        assert re.search(rf"OK {re.escape(expected)}", report), (expected, report)
    assert "ERROR" not in report, report
    from textgen_core.model import numpy_gru
    half = numpy_gru.half_matrices_here()
    assert f"GRU steps: the compiled helper (textgen_core/model/_gru_step), float{16 if half else 32} matrices" \
        in report, report


def test_the_help_named_in_checkhealth_advice_is_a_tag(vim):
    """checkhealth makes a link of `:help tag`; a period after the tag went into the link (E149)."""
    lua(vim, "require('textgen').setup({ debounce_ms = -1 })")
    report = health_report(vim)
    named = re.findall(r":help \|?([^\s|]+)", report)
    tags = set(re.findall(r"\*([^*\s]+)\*", (REPO / "doc" / "textgen.txt").read_text()))
    assert named and all(tag in tags for tag in named), (named, report)


def test_help_has_a_tag_for_every_command_map_and_option(tmp_path):
    text = (REPO / "doc" / "textgen.txt").read_text()
    tags = set(re.findall(r"\*([^*\s]+)\*", text))
    commands = {":TextGenComplete", ":TextGenStatus", ":TextGenModel", ":TextGenToggle"}
    maps = {f"<Plug>(textgen-{name})" for name in
            ("accept", "accept-word", "accept-line", "next", "prev", "dismiss", "complete")}
    options = {f"g:textgen.{name}" for name in
               ("auto_trigger", "debounce_ms", "linger_ms", "max_chars", "multiline", "alternatives", "model",
                "backend", "temperature", "seed", "filetypes", "mid_line", "keys", "menu_visible")}
    assert commands | maps | options | {"textgen", "g:textgen", "hl-TextGenSuggestion"} <= tags
    shutil.copy(REPO / "doc" / "textgen.txt", tmp_path / "textgen.txt")
    result = subprocess.run([str(NVIM), "--headless", "-u", "NONE", "-i", "NONE", "-c", f"helptags {tmp_path}",
                             "-c", "qa!"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "E154" not in result.stderr, result.stderr   # E154: duplicate tag
    assert (tmp_path / "tags").read_text().count("textgen.txt") >= len(commands | maps | options)


def test_every_config_option_is_documented():
    text = (REPO / "doc" / "textgen.txt").read_text()
    defaults = subprocess.run(
        [str(NVIM), "--headless", "-u", "NONE", "-i", "NONE", "--cmd", f"set rtp^={REPO}", "-c",
         "lua io.stdout:write(table.concat(vim.tbl_keys(require('textgen.config').defaults), ' '))", "-c", "qa!"],
        capture_output=True, text=True, timeout=30).stdout.split()
    assert len(defaults) >= 12          # seed and menu_visible default to nil
    for name in defaults:
        assert f"*g:textgen.{name}*" in text, name


# -- without a model -----------------------------------------------------------------------------

@pytest.fixture
def nvim_without_model(tmp_path):
    # Wide enough that the one-line message is never cut: v:echospace, the width it is cut to, loses
    # the ruler's 18 cells while Neovim still shows the ruler on the command line (seen once in CI).
    editor = start_nvim(shared_manifest(), tmp_path / "home", {"model": "no-such-model"},
                        models_dir=tmp_path / "empty", columns=140)
    yield editor
    editor.close()


def test_a_message_cut_to_the_command_line_keeps_its_way_out(nvim_without_model):
    """An 80-column terminal has 68 cells for a message: the problem is cut, the way out stays whole."""
    fit = "return require('textgen.message').fit(...)"
    text, way_out = "textgen: no model named 'notes-from-the-long-winter'", "; choose one with :TextGenModel"
    fitted = lua(nvim_without_model, fit, text, 68, way_out)
    assert fitted.endswith("…; choose one with :TextGenModel") and fitted.startswith("textgen: no model named")
    assert len(fitted) <= 67, fitted
    assert lua(nvim_without_model, fit, text, 200, way_out) == text + way_out
    plain = "textgen: " + "x" * 100                        # no way out: cut at the end
    assert lua(nvim_without_model, fit, plain, 68) == plain[:66] + "…"


def test_without_a_loadable_model_one_clear_message_and_nothing_breaks(nvim_without_model):
    vim = nvim_without_model
    vim.input("ithe quick brown")
    wait_for(lambda: "no model named 'no-su" in messages(vim), what="the message")
    for word in (" fox", " jumps", " over"):
        vim.input(word)
        wait_for(lambda word=word: buffer_text(vim).endswith(word) and idle(vim))
    vim.input("<Tab>x")
    wait_for(lambda: buffer_text(vim) == "the quick brown fox jumps over\tx", what="typing as usual")
    log = messages(vim)
    assert log.count("textgen:") == 1, log
    assert ":TextGenModel" in log                   # the way out, whole even where the line is cut
    assert ghost(vim) is None
    assert "Error" not in log and "Traceback" not in log, log


def test_without_its_python_one_message_and_nothing_breaks(tmp_path):
    vim = start_nvim(shared_manifest(), tmp_path / "home", {"model": "no-such-model"},
                     python=tmp_path / "no-venv" / "bin" / "python")
    try:
        vim.input("ithe qu")
        wait_for(lambda: "no Python to run textgen with" in messages(vim), what="the message")
        vim.input("ick<Tab>x<Esc>")
        wait_for(lambda: mode(vim) == "n" and buffer_text(vim) == "the quick\tx", what="typing as usual")
        assert messages(vim).count("textgen:") == 1, messages(vim)
        said = lua(vim, "return require('textgen').status().model_error")
        assert "g:textgen.python (" in said and ") is missing" in said and "make install" in said, said
        assert "no Python to run textgen with" in output_of(vim, "TextGenStatus")
    finally:
        vim.close()


def test_a_python_that_is_not_a_program_is_named_as_such(tmp_path):
    """g:textgen.python naming a file that is there but not executable was said to be "missing", with
    "or set g:textgen.python" as the way out (it was set)."""
    python = tmp_path / "python3"
    python.write_text("not a program")
    vim = start_nvim(shared_manifest(), tmp_path / "home", {"model": "no-such-model"}, python=python)
    try:
        vim.input("ithe qu")
        wait_for(lambda: "no Python to run textgen with" in messages(vim), what="the message")
        said = lua(vim, "return require('textgen').status().model_error")
        assert f"g:textgen.python ({python}) is not an executable program; point it at a Python" in said, said
    finally:
        vim.close()


# -- learning what is typed ------------------------------------------------------------------------

LEARNED = re.compile(r"learned: (\d+) bytes of this session's text")
LINES = [f"local item_{i} = require('items').load({i})" for i in range(24)]        # about 1 KB


def _type_a_kilobyte(editor) -> str:
    editor.current.buffer[:] = LINES
    editor.input("GA")
    editor.input(" -- x")
    return "\n".join(LINES) + " -- x"


def _learned_on(model, text: str, learned_bytes: int):
    """The model after the engine's learning of `text` from its start, `learned_bytes` of it (one
    SGD step per adaptation.CHUNK bytes, the state carried from chunk to chunk)."""
    from textgen_core.memory.adaptation import CHUNK, OnlineLearner
    from textgen_core.model.vocab import to_ids

    data = text.encode()
    learner = OnlineLearner(model.config, model.weights)
    for start in range(0, learned_bytes, CHUNK):
        learner.learn(to_ids(data[start:start + CHUNK + 1]))
    return model.with_weights(learner.weights())


def _engine_settled(editor) -> dict | None:
    engine = lua(editor, "return require('textgen.host').status().engine") or {}
    return engine if engine.get("pending") == 0 and engine.get("learning") is False else None


def test_the_model_learns_what_is_typed_and_status_says_how_much(tiny_model_dir, tiny_model, tmp_path):
    """Its own Neovim: the learned weights stay with the engine, and the other tests compare their
    ghost text with the model as trained."""
    editor = start_nvim(shared_manifest(), tmp_path / "home", {"model": str(tiny_model_dir)})
    try:
        wait_for(lambda: idle(editor), what="textgen to be idle")
        assert "learned: " not in output_of(editor, "TextGenStatus")
        context = _type_a_kilobyte(editor)
        wait_for(lambda: ghost(editor) is not None and idle(editor), what="a suggestion after the typing")
        learned = wait_for(lambda: LEARNED.search(output_of(editor, "TextGenStatus")), timeout=20,
                           what="the status to say what was learned")
        assert 256 <= int(learned.group(1)) <= len(context)
        wait_for(lambda: "engine: running, idle" in output_of(editor, "TextGenStatus"), timeout=20,
                 what="the engine to finish learning")
        editor.input("<Esc>o")
        editor.input("local item_24 = ")
        after = context + "\nlocal item_24 = "
        wait_for(lambda: buffer_text(editor) == after and idle(editor), what="the new line")
        learned_bytes = wait_for(lambda: _engine_settled(editor), timeout=20,
                                 what="the engine to finish learning")["learned_bytes"]
        # asked again now that the weights that serve stay as they are: what the learned model says
        editor.input("<Cmd>TextGenComplete<CR>")
        expected = fresh_completion(_learned_on(tiny_model, after, learned_bytes), after, DecodeOptions())[0].rstrip()
        unlearned = fresh_completion(tiny_model, after, DecodeOptions())[0].rstrip()
        assert expected and expected != unlearned, "learning should change this suggestion"
        wait_for(lambda: (g := ghost(editor)) is not None and g.text == expected and idle(editor),
                 what=f"the learned model's suggestion {expected!r}, not the model's own {unlearned!r}")
    finally:
        editor.close()


def test_with_learning_off_nothing_is_learned_and_status_says_so(tiny_model_dir, tiny_model, tmp_path):
    editor = start_nvim(shared_manifest(), tmp_path / "home", {"model": str(tiny_model_dir), "learn": False})
    try:
        context = _type_a_kilobyte(editor)
        expected = fresh_completion(tiny_model, context, DecodeOptions())[0].rstrip()
        wait_for(lambda: (g := ghost(editor)) is not None and g.text == expected and idle(editor),
                 what="the model's own suggestion")
        status = wait_for(lambda: (out := output_of(editor, "TextGenStatus")) and "engine: running, idle" in out
                          and out, timeout=20, what="the engine to be idle")
        assert "learning: off (g:textgen.learn)" in status
        assert lua(editor, "return require('textgen.host').status().engine.learned_bytes") == 0
    finally:
        editor.close()


def test_a_message_cut_to_fit_the_command_line_is_whole_in_status(vim, tmp_path):
    # One line, or Neovim would stop typing at "Press ENTER"; `:messages` keeps only that line, so
    # the part cut off (here the folder asked for) is in :TextGenStatus.
    missing = tmp_path / ("a-long-folder-name-" * 12) / "model"
    vim.command("messages clear")
    vim.command(f"TextGenModel {missing}")
    said = wait_for(lambda: [line for line in messages(vim).splitlines() if line.startswith("textgen: ")],
                    timeout=30, what="the message")
    assert said[-1].endswith("…") or "…" in said[-1], said
    status = output_of(vim, "TextGenStatus")
    assert "messages cut to fit the command line, whole:" in status, status
    whole = [line.strip() for line in status.splitlines() if str(missing) in line and line.startswith("  textgen: ")]
    assert whole and whole[-1].startswith(said[-1].split("…")[0]), (whole, said)
