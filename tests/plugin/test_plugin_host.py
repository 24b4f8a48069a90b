"""The Python host's own pieces, without Neovim: what a Lua request becomes, and the model session
(loading, failing once with a clear reason, switching, status)."""
from __future__ import annotations

import sys
import threading

import pytest

from tests.nvim_harness import REPO

sys.path.insert(0, str(REPO / "rplugin" / "python3"))

from textgen.session import ModelChoice, ModelSession  # noqa: E402
from textgen.suggestion_request import MAX_CONTEXT_CHARS, SuggestionRequest  # noqa: E402


def lua_payload(**overrides):
    payload = {"ticket": 7, "buffer": 3, "context": "the qu", "end_offset": 6, "max_chars": 40,
               "multiline": False, "temperature": 0, "n": 1, "model": "default", "backend": "numpy"}
    payload.update(overrides)
    return payload


def test_a_lua_request_becomes_decode_options():
    ask = SuggestionRequest.from_lua(lua_payload(multiline=True, n=3, temperature=0.5, seed=11))
    assert (ask.ticket, ask.buffer, ask.context, ask.end_offset) == (7, 3, "the qu", 6)
    assert ask.options.max_chars == 40 and ask.options.stop_at_newline is False
    assert ask.options.n == 3 and ask.options.temperature == 0.5 and ask.options.seed == 11
    assert ask.learn is False


def test_only_a_true_learn_asks_the_engine_to_learn():
    assert SuggestionRequest.from_lua(lua_payload(learn=True)).learn is True
    for value in (False, 1, "true", None):
        assert SuggestionRequest.from_lua(lua_payload(learn=value)).learn is False


def test_a_request_without_seed_is_deterministic_and_bounded():
    ask = SuggestionRequest.from_lua(lua_payload(context="x" * (MAX_CONTEXT_CHARS + 100), n=99))
    assert ask.options.seed is None and ask.options.stop_at_newline is True
    assert len(ask.context) == MAX_CONTEXT_CHARS
    assert ask.options.n == 10


def test_session_serves_a_model_and_says_what_it_is(tiny_model_dir):
    session = ModelSession()
    try:
        engine = session.engine_for(ModelChoice(str(tiny_model_dir), "numpy"))
        assert engine is not None and engine.model.name == "tiny"
        summary = session.model_summary()
        assert summary["name"] == "tiny" and summary["layers"] == 1 and summary["hidden"] == 64
        assert summary["training_files"] == ["tiny.txt"] and summary["val_bpc"] > 0
        assert session.status()["engine"]["alive"] is True
    finally:
        session.close()


def test_session_answers_through_the_engine(tiny_model_dir, tiny_model):
    session = ModelSession()
    done = threading.Event()
    results = []

    def deliver(completion):
        results.append(completion)
        if completion.final:
            done.set()

    try:
        engine = session.engine_for(ModelChoice(str(tiny_model_dir), "numpy"))
        ask = SuggestionRequest.from_lua(lua_payload(model=str(tiny_model_dir)))
        engine.submit(ask.buffer, ask.context, ask.options, deliver, end_offset=ask.end_offset)
        assert done.wait(30)
        assert results[-1].texts[0] == tiny_model.complete("the qu", max_chars=40)
    finally:
        session.close()


def test_an_unloadable_model_fails_once_with_a_reason_and_keeps_the_current_one(tiny_model_dir, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("TEXTGEN_MODELS_DIR", str(tmp_path))
    session = ModelSession()
    try:
        good = ModelChoice(str(tiny_model_dir), "numpy")
        assert session.engine_for(good) is not None
        bad = ModelChoice("no-such-model", "numpy")
        reason = session.load(bad)
        assert reason.startswith("no model named 'no-such-model'")
        assert session.engine_for(bad) is None and session.failures[bad] == reason
        assert session.choice == good and session.engine is not None
        assert session.status()["failures"] == [{"name": "no-such-model", "backend": "numpy", "reason": reason}]
    finally:
        session.close()


@pytest.mark.parametrize("backend", ["pytorch"])
def test_an_unknown_backend_is_a_reason_not_a_crash(tiny_model_dir, backend):
    session = ModelSession()
    reason = session.load(ModelChoice(str(tiny_model_dir), backend))
    assert "unknown backend" in reason and session.engine is None
