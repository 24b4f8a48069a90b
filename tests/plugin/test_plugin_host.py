"""The Python host's own pieces, without Neovim: what a Lua request becomes, and the model session
(loading, failing once with a clear reason, switching, status)."""
from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from tests.nvim_harness import REPO

sys.path.insert(0, str(REPO / "rplugin" / "python3"))

from textgen.bridge import EditorBridge  # noqa: E402
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


class LoopThread:
    """What the bridge needs of pynvim's Nvim: its asyncio loop (`loop`), run on a thread of its own as
    the host runs it, and `exec_lua`, which records what would go to Neovim (that is pynvim's part)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.sent: list[tuple] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def exec_lua(self, code, *args, async_=False):
        assert threading.current_thread() is self.thread, "pynvim's API called off its loop's thread"
        self.sent.append(args)

    def on_loop(self, fn):
        done = threading.Event()
        self.loop.call_soon_threadsafe(lambda: (fn(), done.set()))
        assert done.wait(5)

    def close(self):
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture
def nvim_loop():
    loop = LoopThread()
    yield loop
    loop.close()


def test_an_answer_from_the_engine_s_thread_is_sent_before_the_call_returns(nvim_loop):
    """The engine's thread waits until its answer is on its way: it computing on while the loop's
    thread waits for the GIL kept a third of the first words 2-4 ms from the screen."""
    bridge = EditorBridge(nvim_loop)
    bridge.call_lua("on_result", 1, ["word"], False, until_sent_s=5)
    assert nvim_loop.sent == [("on_result", 1, ["word"], False)]

    nvim_loop.on_loop(lambda: None)                       # the loop is idle: nothing else was sent
    bridge.call_lua("on_answer", 2)                        # without a wait: scheduled, not waited for
    nvim_loop.on_loop(lambda: None)
    assert nvim_loop.sent[-1] == ("on_answer", 2)


def test_the_loop_s_own_thread_never_waits_for_itself(nvim_loop):
    bridge = EditorBridge(nvim_loop)
    right_after = []
    nvim_loop.on_loop(lambda: (bridge.call_lua("on_result", 3, ["x"], True, until_sent_s=5),
                               right_after.append(list(nvim_loop.sent))))
    assert right_after == [[]], "the loop's thread waited for a send only it could make"
    nvim_loop.on_loop(lambda: None)
    assert nvim_loop.sent == [("on_result", 3, ["x"], True)]


def test_an_answer_for_a_closed_loop_is_dropped_without_waiting(nvim_loop):
    bridge = EditorBridge(nvim_loop)
    nvim_loop.close()
    bridge.call_lua("on_result", 4, ["y"], True, until_sent_s=5)     # Neovim is exiting: no error, no wait
    assert nvim_loop.sent == []
