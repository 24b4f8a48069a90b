"""Every request costs bounded work, whatever it asks for: decoding stops where the text it shows is
complete (a loop, two blank lines, a run of blanks) and never decodes more than a fixed number of
bytes and lines; options that no decoder can use (nan, inf) are refused or clamped on the way in."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.core.test_cli import textgen
from tests.nvim_harness import NVIM, REPO
from textgen_core.decode import (
    MAX_BLANK_RUN,
    MAX_LINE_BYTES,
    MAX_LINES,
    MAX_TEXT_BYTES,
    MAX_WORD_BYTES,
    DecodeOptions,
    decode,
)
from textgen_core.model.vocab import encode

sys.path.insert(0, str(REPO / "rplugin" / "python3"))

from textgen.suggestion_request import SuggestionRequest  # noqa: E402


class StepBudgetExceeded(AssertionError):
    pass


class CountingBackend:
    """A real backend whose decoding steps are counted; past `budget` of them the test fails at once
    (so that a decoder without bounds fails quickly instead of running for minutes)."""

    def __init__(self, backend, budget: int = 4 * MAX_TEXT_BYTES) -> None:
        self.backend, self.name, self.budget, self.steps = backend, backend.name, budget, 0

    def zero_state(self, batch: int = 1):
        return self.backend.zero_state(batch)

    def prime(self, ids, state=None, all_logits: bool = False):
        return self.backend.prime(ids, state, all_logits)

    def step(self, ids, state):
        self.steps += 1
        if self.steps > self.budget:
            raise StepBudgetExceeded(f"decoding went on past {self.budget} steps")
        return self.backend.step(ids, state)


class TextBackend:
    """A model that knows one text by heart: it predicts the text's next byte, going round at its end.
    Its state (B, 1) is the position of the byte fed last."""

    name = "text"

    def __init__(self, text: bytes) -> None:
        self.text = np.frombuffer(text, np.uint8)

    def _logits(self, positions: np.ndarray) -> np.ndarray:                          # (B,) → (B, 256)
        logits = np.full((len(positions), 256), -20.0, np.float32)
        logits[np.arange(len(positions)), self.text[positions % len(self.text)]] = 20.0
        return logits

    def start(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The logits before the text's first byte, and that state."""
        return self._logits(np.zeros(1, np.int64))[0], (np.full((1, 1), -1.0, np.float32),)

    def zero_state(self, batch: int = 1):
        return (np.full((batch, 1), -1.0, np.float32),)

    def step(self, ids, state):
        fed = state[0][:, 0].astype(np.int64) + 1                                     # (B,)
        return self._logits(fed + 1), (fed.astype(np.float32).reshape(-1, 1),)


def decode_text(text: bytes, options: DecodeOptions) -> tuple[str, int]:
    """What decoding shows for a model that knows `text`, and the steps it took."""
    known = TextBackend(text)
    counting = CountingBackend(known)
    logits, state = known.start()
    return decode(counting, state, logits, options)[0], counting.steps


def test_a_request_for_100000_characters_decodes_a_bounded_number_of_bytes(tiny_model):
    for multiline, cap in ((True, MAX_TEXT_BYTES), (False, MAX_LINE_BYTES)):
        counting = CountingBackend(tiny_model.backend)
        context = encode("the quick brown fox jumps over the lazy dog.\n")
        logits, state = tiny_model.prime(context)
        text = decode(counting, state, logits, DecodeOptions(max_chars=100_000, stop_at_newline=not multiline),
                      memory=context, mixer=tiny_model.mixer)[0]
        assert counting.steps <= cap + MAX_WORD_BYTES and len(text.encode()) <= cap
        assert text.count("\n") < MAX_LINES

    numbers = " ".join(str(i) for i in range(1000)).encode()      # text that never ends, loops or pauses
    for multiline, cap in ((True, MAX_TEXT_BYTES), (False, MAX_LINE_BYTES)):
        text, steps = decode_text(numbers, DecodeOptions(max_chars=100_000, stop_at_newline=not multiline))
        assert len(text.encode()) == cap and steps <= cap + MAX_WORD_BYTES
    lines = "\n".join(str(i) for i in range(1000)).encode()
    text, steps = decode_text(lines, DecodeOptions(max_chars=100_000, stop_at_newline=False))
    assert text.splitlines() == [str(i) for i in range(MAX_LINES)] and steps <= len(text) + MAX_WORD_BYTES


def test_a_block_that_repeats_stops_after_one_turn_even_when_longer_than_a_line():
    block = (b"for row in rows:\n    total += row.price * row.count\n"
             b"    print(row.name, total, file=report)\n    rows_done += 1\n")
    assert len(block) > 96                                     # longer than a one-line loop can be
    text, steps = decode_text(block, DecodeOptions(max_chars=1000, stop_at_newline=False))
    assert text == block.decode().rstrip()
    assert steps <= 2 * len(block) + MAX_WORD_BYTES + 16


def test_a_suggestion_ends_where_only_blanks_or_two_blank_lines_follow_its_text():
    text, steps = decode_text(b"x = 1\n" + b" " * 5000, DecodeOptions(max_chars=1000, stop_at_newline=False))
    assert text == "x = 1" and steps <= len("x = 1\n") + MAX_BLANK_RUN + MAX_WORD_BYTES
    functions = b"def f():\n    return 1\n\n\ndef g():\n    return 2\n\n\n" + bytes(range(33, 127))
    text, steps = decode_text(functions, DecodeOptions(max_chars=1000, stop_at_newline=False))
    assert text == "def f():\n    return 1" and steps <= 30 + MAX_WORD_BYTES
    later = b"\n\n\ndef g():\n    return 2" + b"\n" * 10
    text, _ = decode_text(later, DecodeOptions(max_chars=80, stop_at_newline=False))
    assert text == "\n\n\ndef g():\n    return 2"                  # blank lines before the text are kept


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.5"])
def test_a_temperature_that_is_not_a_finite_number_from_zero_up_is_refused_in_one_line(value):
    run = textgen("complete", "--model", "no-such-model", f"--temperature={value}", "hi", timeout=60)
    assert run.returncode == 2 and run.stderr.splitlines() == \
        [f"textgen complete: --temperature must be a finite number of 0 or more (got {float(value)})"]


def test_what_lua_sends_is_clamped_before_it_reaches_the_decoder():
    payload = {"ticket": 1, "buffer": 1, "context": "the", "end_offset": 3, "model": "default", "backend": "numpy"}
    for temperature in (float("nan"), float("inf"), -1.0, "hot", True):
        options = SuggestionRequest.from_lua({**payload, "temperature": temperature}).options
        assert options.temperature == 0.0
    assert SuggestionRequest.from_lua({**payload, "temperature": 99.0}).options.temperature == 5.0
    for max_chars, expected in ((10**9, MAX_TEXT_BYTES), (float("nan"), 80), (float("inf"), 80), (-5, 0)):
        assert SuggestionRequest.from_lua({**payload, "max_chars": max_chars}).options.max_chars == expected
    assert SuggestionRequest.from_lua({**payload, "n": float("nan"), "seed": float("inf")}).options.n == 1
    with pytest.raises(ValueError, match="finite"):
        DecodeOptions(temperature=float("nan"))


def test_the_max_chars_option_refuses_what_no_suggestion_can_hold():
    """In a real Neovim: the option's check (lua/textgen/config.lua) takes up to the core's MAX_TEXT_BYTES."""
    script = ("local config = require('textgen.config') "
              "local out = {} "
              "for _, v in ipairs({ 80, 1024, 1025, 100000, 0/0, 1/0 }) do "
              "  local cfg, problems = config.validate({ max_chars = v }) "
              "  out[#out + 1] = { max_chars = cfg.max_chars, problems = problems } "
              "end "
              "io.stdout:write(vim.json.encode(out))")
    run = subprocess.run([str(NVIM), "--headless", "-u", "NONE", "-i", "NONE", "--cmd", f"set rtp^={REPO}",
                          "-c", f"lua {script}", "-c", "qa!"], capture_output=True, text=True, timeout=30)
    results = json.loads(run.stdout)
    assert [r["max_chars"] for r in results] == [80, MAX_TEXT_BYTES, 80, 80, 80, 80]
    assert [len(r["problems"]) for r in results] == [0, 0, 1, 1, 1, 1]
    assert f"g:textgen.max_chars must be a whole number from 1 to {MAX_TEXT_BYTES} (got 100000)" \
        in results[3]["problems"][0]
