"""The open buffers as memory (issue 24): the whole current buffer and the other loaded buffers as an
n-gram mixed in after the project's (`memory.open_buffers`), served by `Engine.set_memories`."""
from __future__ import annotations

import pytest

from tests.conftest import suggest
from textgen_core.memory.match import MatchMixer
from textgen_core.memory.ngram import ORDERS, confidence_bucket
from textgen_core.memory.open_buffers import (
    BUFFER_WEIGHTS,
    MAX_BUFFER_BYTES,
    SEPARATOR,
    buffer_text,
    build_buffer_memory,
)

# A name the tiny model never saw, used all over the text below the cursor.
NAME = "qzv_kwyjibo"
BELOW = "".join(f"def handler_{i}(request):\n    return {NAME}(request, {i})\n\n" for i in range(100, 160))
CONTEXT = "def handler_99(request):\n    return qzv_kwyji"


def test_the_text_below_the_cursor_teaches_the_model_its_names(tiny_model):
    table = build_buffer_memory([(CONTEXT + "\n\n" + BELOW).encode()])
    assert not suggest(tiny_model, [], CONTEXT).startswith("bo(")
    assert suggest(tiny_model, [(table, BUFFER_WEIGHTS)], CONTEXT).startswith("bo(")


def test_the_weights_suit_the_mixer_after_a_project_table():
    table = build_buffer_memory([BELOW.encode()])
    assert len(BUFFER_WEIGHTS) == 1 + 6 * len(ORDERS) + 1 == table.buckets and table.by_confidence
    mixer = MatchMixer().with_memories([(table, BUFFER_WEIGHTS), (table, BUFFER_WEIGHTS)])
    assert [w for _, w in mixer.memories] == [BUFFER_WEIGHTS, BUFFER_WEIGHTS]


def test_the_cap_takes_the_nearest_buffer_first():
    near, far = b"near buffer: zqx_frobnicator(1)\n" * 20, b"far buffer: qpw_glorbulator(2)\n" * 20
    cap = len(near) + len(SEPARATOR) + 10
    assert buffer_text([near, far], cap) == near + SEPARATOR + far[:10]
    table = build_buffer_memory([near, far], max_bytes=cap)
    probs, bucket = table.probs(b"buffer: zqx_frobnicat")
    assert bucket == confidence_bucket(len(ORDERS) - 1, 1, 20, True) and probs[ord("o")] > 0.9   # the near one
    _, bucket = table.probs(b"buffer: qpw_glorbulat")
    assert bucket < confidence_bucket(len(ORDERS) - 3, 1, 1, True)   # the far one's name is not counted
    assert len(buffer_text([b"x" * (MAX_BUFFER_BYTES + 100), b"y" * 10])) == MAX_BUFFER_BYTES


def test_no_text_gives_no_table():
    assert build_buffer_memory([]) is None
    assert build_buffer_memory([b"", b""]) is None
    assert buffer_text([b"", b"ab", b"", b"cd"]) == b"ab" + SEPARATOR + b"cd"


def test_where_a_buffer_ends_says_nothing_of_what_comes_next():
    """A buffer sent as it stood when the cursor left it (`the qu`, the rest not typed yet): its end is
    not counted as what follows its last bytes, nor any context across two buffers."""
    table = build_buffer_memory([b"the qu", b"the qu", b"quick quiet"])
    probs, bucket = table.probs(b"x the qu")
    assert bucket == confidence_bucket(2, 1, 1, True)         # " qu" (order 3), from " quiet" alone
    assert probs[ord("i")] > 0.5 and probs[SEPARATOR[0]] < 0.01
    for short in ([b"ab"], [b"a", b"b"], [b"x" * 15, b"y"]):                  # shorter than the longest order
        assert build_buffer_memory(short).probs(b"a")[0].sum() == pytest.approx(1.0)
    # "the" (order 3) is held, "\0the" (order 4, across a text's end) is not
    assert table.probs(b"qu" + SEPARATOR + b"the")[1] == confidence_bucket(2, 1, 2, True)
