"""Project memory (issue 24): the text files under a folder as an n-gram mixed in after the corpus
n-gram — `model.with_project(root)`, its fitted weights, and the CLI's --project."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from textgen_core.decode.steps import RowMemory, _greedy, mixed_log_probs
from textgen_core.memory.project import DEFAULT_PROJECT_WEIGHTS, build_project_memory

# A name the tiny model never saw, used all over a project.
NAME = "zqx_frobnicator"
MODULE = "".join(f"def handler_{i}(request):\n    return {NAME}(request, {i})\n\n" for i in range(200))


def make_project(tmp_path, extra: dict[str, str] | None = None):
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (root / "src" / "handlers.py").write_text(MODULE)
    (root / "src" / "more.py").write_text(MODULE.replace("handler_", "view_"))
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


def test_a_project_teaches_the_model_its_names(tiny_model, tmp_path):
    root = make_project(tmp_path)
    with_project = tiny_model.with_project(root)
    context = "def handler_99(request):\n    return zqx_fro"
    assert not tiny_model.complete(context, max_chars=30).startswith("bnicator(")
    assert with_project.complete(context, max_chars=30).startswith("bnicator(")
    text = "def other(request):\n    return zqx_frobnicator(request, 7)\n"
    assert with_project.bits_per_char(text) < 0.8 * tiny_model.bits_per_char(text)
    assert with_project.project.summary()["files"] == 3 and with_project.project.ngram.contexts > 0


def test_without_a_project_the_model_is_the_same(tiny_model, tmp_path):
    root = make_project(tmp_path)
    again = tiny_model.with_project(root).with_project(None)
    context = "def greet(name):\n    return 'hel"
    assert again.project is None and again.mixer.memories == ()
    assert again.complete(context, max_chars=20, n=3) == tiny_model.complete(context, max_chars=20, n=3)
    assert again.bits_per_char(MODULE) == tiny_model.bits_per_char(MODULE)


def test_the_weights_are_fitted_on_text_the_counts_did_not_see(tiny_model, tmp_path):
    root = make_project(tmp_path)
    fitted = build_project_memory(root, tiny_model)
    assert fitted.fitted_on_bytes > 0 and len(fitted.weights) == fitted.ngram.buckets == len(DEFAULT_PROJECT_WEIGHTS)
    # The names repeat in every file: the long contexts found are trusted far above the default 0.25.
    assert max(fitted.weights) > 0.5
    assert build_project_memory(root).fitted_on_bytes == 0           # no model: the defaults


def test_greedy_is_the_argmax_of_the_mixture_with_both_ngrams(tiny_model, tmp_path):
    model = tiny_model.with_project(make_project(tmp_path))
    assert model.mixer.has_ngram and len(model.mixer.memories) == 1
    rng = np.random.default_rng(0)
    for context in (b"    return zqx_frob", b"def view_3(req", b"the cat "):
        memory = RowMemory(context)
        logits = rng.normal(size=256).astype(np.float32) + model.prime(context)[0]
        assert _greedy(logits, model.mixer, memory) == int(mixed_log_probs(logits, model.mixer, memory).argmax())


def test_texts_left_out_and_their_copies_are_not_counted(tiny_model, tmp_path):
    secret_phrase = "the quokka_marmalade_theorem holds\n" * 40
    root = make_project(tmp_path, {"notes.md": secret_phrase, "copy-of-notes.md": secret_phrase})
    kept = build_project_memory(root)
    left = build_project_memory(root, leave_out=[secret_phrase.encode()])
    probs_kept, _ = kept.ngram.probs(b"the quokka_marma")
    probs_left, _ = left.ngram.probs(b"the quokka_marma")
    assert probs_kept[ord("l")] > 0.9 and probs_left[ord("l")] < 0.5


def _textgen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textgen_core", *args], capture_output=True, text=True, cwd=REPO)


def test_the_cli_completes_and_evaluates_with_a_project(tiny_model_dir, tmp_path):
    root = make_project(tmp_path)
    out = _textgen("complete", "--model", str(tiny_model_dir), "--project", str(root), "--json",
                   "def handler_99(request):\n    return zqx_fro")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["completions"][0].startswith("bnicator(")
    sample = tmp_path / "sample.py"
    sample.write_text("def handler_7(request):\n    return zqx_frobnicator(request, 7)\n")
    plain = json.loads(_textgen("eval", "--model", str(tiny_model_dir), "--json", str(sample)).stdout)
    helped = json.loads(_textgen("eval", "--model", str(tiny_model_dir), "--project", str(root), "--json",
                                 str(sample)).stdout)
    assert helped["overall_bpc"] < 0.8 * plain["overall_bpc"]
    # The file evaluated is left out of the project it lies in, and so is its copy: the project
    # does not hand the model the very text it is scored on.
    unique = "the quokka_marmalade_theorem holds for every jabberwock\n" * 8
    outside = tmp_path / "notes.md"
    outside.write_text(unique)
    elsewhere = json.loads(_textgen("eval", "--model", str(tiny_model_dir), "--project", str(root), "--json",
                                    str(outside)).stdout)
    (root / "notes.md").write_text(unique)
    (root / "docs").mkdir()
    (root / "docs" / "notes-copy.md").write_text(unique)
    own = json.loads(_textgen("eval", "--model", str(tiny_model_dir), "--project", str(root), "--json",
                              str(root / "notes.md")).stdout)
    assert own["overall_bpc"] == pytest.approx(elsewhere["overall_bpc"], rel=1e-9)

def test_the_cli_refuses_a_project_that_is_not_a_folder_in_one_line(tiny_model_dir, tmp_path):
    out = _textgen("complete", "--model", str(tiny_model_dir), "--project", str(tmp_path / "missing"), "x")
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1 and "--project" in out.stderr


REGISTRY = '''"""Widget registry."""


def frobnicate_widget_registry(widgets, strict=False):
    registry = {}
    for widget in widgets:
        registry[widget.name] = widget
    return registry
'''


@pytest.mark.parametrize("corpus_ngram", [True, False])
def test_the_default_model_suggests_a_name_of_another_file_whole(tmp_path, corpus_ngram):
    """A name the project wrote, long and sure, is suggested to its end (it stopped at `idget`: every
    byte of it weighed 0.75 against the model, and the word search found the short word worth more)."""
    from textgen_core import load_model

    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'widgets'\n")
    (root / "pkg" / "registry.py").write_text(REGISTRY)
    (root / "pkg" / "app.py").write_text("from pkg.registry import frobnicate_widget_registry\n\n"
                                         "table = frobnicate_widget_registry(widgets, strict=True)\n")
    model = load_model(REPO / "models" / "default")
    model = model if corpus_ngram and model.mixer.ngram is not None else model.with_corpus_ngram(None)
    context = "import os\n\nx = frobnicate_w"
    assert not model.complete(context).startswith("idget_registry(")
    assert model.with_project(root).complete(context).startswith("idget_registry(")
