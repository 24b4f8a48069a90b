"""The completion engine: latest wins, cached == fresh, streaming, hot-swap, clean shutdown."""
import random
import threading
import time

import pytest

from tests.conftest import TINY_TEXT, train_tiny_model
from textgen_core import load_model
from textgen_core.decode import DecodeOptions
from textgen_core.model.text_model import context_window
from textgen_core.serve.engine import Engine, fresh_completion

OPTIONS = DecodeOptions(max_chars=30)


class Collector:
    """Records callbacks and lets a test wait for a final result with a deadline."""

    def __init__(self):
        self.events = []
        self.finals = []
        self._done = threading.Condition()

    def __call__(self, completion):
        with self._done:
            self.events.append(completion)
            if completion.final:
                self.finals.append(completion)
                self._done.notify_all()

    def wait_finals(self, count, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self._done:
            while len(self.finals) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {count} final results, got {len(self.finals)}"
                self._done.wait(left)
        return self.finals


@pytest.fixture
def engine(tiny_model):
    engine = Engine(tiny_model)
    yield engine
    engine.close()


def _serve(engine, context, end_offset=None, options=OPTIONS, key="buf", guesses=0):
    collector = Collector()
    engine.submit(key, context, options, collector, end_offset=end_offset, guesses=guesses)
    return collector.wait_finals(1)[0]


def test_window_start_is_aligned_to_the_document():
    data = bytes(range(256)) * 4
    assert context_window(data[:100], 100, 320, 64) == data[:100]
    # 1000 bytes: start = ceil((1000 - 320) / 64) * 64 = 704
    assert context_window(data[:1000], 1000, 320, 64) == data[704:1000]
    # only a tail was passed: the same window, found from the end offset
    assert context_window(data[500:1000], 1000, 320, 64) == data[704:1000]
    assert context_window(data[:1001], 1001, 320, 64) == data[704:1001]


def test_a_request_yields_the_fresh_result(engine, tiny_model):
    result = _serve(engine, "the quick brown fox jumps over the lazy")
    assert result.texts[0] == fresh_completion(tiny_model, "the quick brown fox jumps over the lazy", OPTIONS)[0]
    assert result.texts[0] == " dog."
    assert result.error is None and result.elapsed_ms > 0


def test_burst_of_100_requests_yields_one_final_result_for_the_last(engine):
    collector = Collector()
    ids = [engine.submit("buf", TINY_TEXT[:200 + i], OPTIONS, collector) for i in range(100)]
    finals = collector.wait_finals(1)
    _wait_idle(engine)
    assert [f.request_id for f in collector.finals] == [ids[-1]]
    assert all(e.request_id == ids[-1] for e in collector.events)
    assert finals[0].texts


def _wait_idle(engine, timeout=10.0):
    deadline = time.monotonic() + timeout
    while engine.pending_count() or engine._warm_jobs:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_cached_results_equal_fresh_results_through_typing_edits_and_jumps(tiny_model):
    engine = Engine(tiny_model, window_bytes=128, window_step=32, checkpoint_every=8)
    rng = random.Random(3)
    document = TINY_TEXT[:3000]
    cursor = 40
    try:
        for step in range(160):
            action = rng.random()
            if action < 0.6:
                cursor = min(len(document), cursor + 1)                      # type forward
            elif action < 0.7:
                cursor = max(1, cursor - rng.randint(1, 5))                   # backspace-ish
            elif action < 0.8:                                               # edit inside the window
                at = max(0, cursor - rng.randint(1, 60))
                document = document[:at] + rng.choice("xyz ") + document[at + 1:]
            else:
                cursor = rng.randint(1, len(document))                        # jump
            context = document[:cursor]
            tail = context[-300:]                                            # the plugin sends a tail
            offset = len(context.encode())
            cached = _serve(engine, tail, end_offset=offset).texts[0]
            fresh = fresh_completion(tiny_model, tail, OPTIONS, end_offset=offset, window_bytes=128, window_step=32)[0]
            assert cached == fresh, (step, context[-60:])
    finally:
        engine.close()


def test_partials_stream_in_order_and_are_prefixes_of_the_final(engine):
    collector = Collector()
    engine.submit("buf", "def greet(", DecodeOptions(max_chars=60, stop_at_newline=False), collector)
    final = collector.wait_finals(1)[0]
    partials = [e.texts[0] for e in collector.events if not e.final]
    assert partials, "no partial result was streamed"
    assert all(final.texts[0].startswith(p) for p in partials)
    assert all(len(a) <= len(b) for a, b in zip(partials, partials[1:]))
    assert collector.events[-1].final


def test_alternatives_come_as_one_result(engine):
    result = _serve(engine, "the ", options=DecodeOptions(max_chars=20, n=3))
    assert 2 <= len(result.texts) <= 3
    assert len(set(result.texts)) == len(result.texts)


def test_hot_swap_takes_effect_for_the_next_request(engine, tmp_path):
    before = _serve(engine, "the quick brown fox jumps over the lazy").texts[0]
    other_text = "zebra zebra zebra zebra quagga.\n" * 200
    other = load_model(train_tiny_model(tmp_path / "zebra", steps=240, text=other_text))
    engine.set_model(other)
    after = _serve(engine, "the quick brown fox jumps over the lazy").texts[0]
    assert engine.model is other
    assert after == fresh_completion(other, "the quick brown fox jumps over the lazy", OPTIONS)[0]
    assert after != before


def test_a_failing_decode_is_reported_and_the_next_request_served(engine, tiny_model):
    class Broken:
        name = "broken"

        def prime(self, ids, state=None, all_logits=False):
            raise RuntimeError("simulated fault")

    broken = load_model(tiny_model.path)
    broken.backend = Broken()
    engine.set_model(broken)
    failed = _serve(engine, "the")
    assert failed.error and "simulated fault" in failed.error
    engine.set_model(tiny_model)
    assert _serve(engine, "the quick brown fox jumps over the lazy").texts[0] == " dog."


def test_close_stops_the_worker_thread(tiny_model):
    before = {t.name for t in threading.enumerate()}
    engines = [Engine(tiny_model) for _ in range(3)]
    for e in engines:
        e.submit("buf", "the quick", OPTIONS, lambda c: None)
    for e in engines:
        e.close()
    assert not any(e.alive for e in engines)
    assert {t.name for t in threading.enumerate()} <= before
    with pytest.raises(RuntimeError):
        engines[0].submit("buf", "x", OPTIONS, lambda c: None)


class _CountingBackend:
    """The model's real backend, counting the decoding steps it is asked for."""

    def __init__(self, inner):
        self.inner, self.name, self.steps = inner, inner.name, 0

    def zero_state(self, batch=1):
        return self.inner.zero_state(batch)

    def step(self, ids, state):
        self.steps += 1
        return self.inner.step(ids, state)

    def prime(self, ids, state=None, all_logits=False):
        return self.inner.prime(ids, state, all_logits)


def test_a_newer_request_stops_a_decode_that_is_already_running(tiny_model):
    """The newer request is submitted from the old one's first partial result, so the old decode is
    provably running when it lands; it must stop within a step, not decode to its end."""
    model = load_model(tiny_model.path)
    model.backend = counting = _CountingBackend(model.backend)
    long_line = DecodeOptions(max_chars=2000, stop_at_newline=False)
    engine = Engine(model, warm=False)
    try:
        def steps_after_the_first_partial(newer_options):
            at_first_partial, newer_ids, newer, old = [], [], Collector(), Collector()

            def on_old(completion):
                if not completion.final and not at_first_partial:
                    at_first_partial.append(counting.steps)
                    if newer_options is not None:
                        newer_ids.append(engine.submit("buf", "the quick", newer_options, newer))
                old(completion)

            counting.steps = 0
            engine.submit("buf", "the", long_line, on_old)
            (newer if newer_options is not None else old).wait_finals(1)
            assert engine.wait_idle(20)
            assert at_first_partial, "no partial result came"
            return counting.steps - at_first_partial[0], old, newer_ids, newer

        uncancelled, *_ = steps_after_the_first_partial(None)
        assert uncancelled >= 100, "the reference decode is too short to show an early stop"
        # the newer request decodes nothing (max_chars=0), so every step counted is the old decode's
        stopped, old, newer_ids, newer = steps_after_the_first_partial(DecodeOptions(max_chars=0))
        assert stopped <= 2, f"the running decode went on for {stopped} steps of {uncancelled}"
        assert old.finals == [] and all(not e.final for e in old.events)
        assert [f.request_id for f in newer.finals] == newer_ids and newer.finals[0].error is None
    finally:
        engine.close()


def test_cancel_drops_the_running_request(engine):
    collector = Collector()
    engine.submit("buf", "the", DecodeOptions(max_chars=2000, stop_at_newline=False), collector)
    engine.cancel("buf")
    _wait_idle(engine)
    second = Collector()
    engine.submit("other", "the quick brown fox jumps over the lazy", OPTIONS, second)
    second.wait_finals(1)
    assert collector.finals == []


def test_a_key_the_engine_guessed_gets_the_first_words_found_ahead_and_what_it_would_have_got(tiny_model):
    """For a request with `guesses`, the idle time after a suggestion goes to finding the first words of the
    suggestions for the likeliest other next keys, as the caller will ask (its context cut to
    `context_bytes`): a request that one of them foresaw gets what a fresh decode gives, in fewer
    steps than without the guess; other keys are decoded as before; after a change of model no
    guess is used."""
    model = load_model(tiny_model.path)
    model.backend = counting = _CountingBackend(model.backend)
    engine, plain = Engine(model, context_bytes=48), Engine(model)
    base = "the quick brown fox jumps over the lazy dog. the qu"          # more than 48 bytes

    def steps_of(serving, typed):
        """Steps the backend took for the request of `typed` (counted in the callback, before the
        engine's next job), and its answer."""
        before, at_answer, collector = counting.steps, [], Collector()

        def callback(completion):
            at_answer.append(counting.steps)
            collector(completion)

        serving.submit("buf", typed[-48:], OPTIONS, callback, end_offset=len(typed), guesses=3)
        answer = collector.wait_finals(1)[0]
        return at_answer[-1] - before, answer

    try:
        foreseen, with_guess, without = [], 0, 0
        for char in "abcdefghijklmnopqrstuvwxyz .,":
            _serve(engine, base[-48:], end_offset=len(base), guesses=3)
            assert engine.wait_idle(20)
            guessed, typed = engine.guessed, base + char
            steps, answer = steps_of(engine, typed)
            assert answer.texts[0] == fresh_completion(tiny_model, typed[-48:], OPTIONS, end_offset=len(typed))[0]
            if engine.guessed > guessed:
                foreseen.append(char)
                with_guess += steps
                assert engine.wait_idle(20) and plain.wait_idle(20)       # (the backend counts both)
                without += steps_of(plain, typed)[0]
        assert 1 <= len(foreseen) <= 3, foreseen
        assert with_guess < without, (with_guess, without)

        _serve(engine, base[-48:], end_offset=len(base), guesses=3)
        assert engine.wait_idle(20)
        engine.set_model(model.with_corpus_ngram(None))                   # the same network, another model
        guessed, typed = engine.guessed, base + foreseen[0]
        answer = _serve(engine, typed[-48:], end_offset=len(typed))
        assert engine.guessed == guessed
        assert answer.texts[0] == fresh_completion(tiny_model, typed[-48:], OPTIONS, end_offset=len(typed))[0]
    finally:
        engine.close()
        plain.close()
