"""Bytes ⇄ text: every text encodes, decoding never shows half a character, bad bytes never crash."""
from hypothesis import given
from hypothesis import strategies as st

from textgen_core.model.vocab import Utf8Stream, decode_complete, encode, is_probably_binary, to_ids


def test_any_text_round_trips_through_bytes():
    text = "naïve café 日本 🎉 עברית e\u0301"
    assert decode_complete(encode(text)) == text
    assert to_ids(encode("A")).tolist() == [65]


def test_lone_surrogates_encode_without_error():
    assert encode("a\udc80b") == b"a?b"


def test_stream_never_shows_half_a_character():
    stream = Utf8Stream()
    data = "日本".encode()
    shown = [stream.feed(b) for b in data]
    assert shown == ["", "", "日", "", "", "本"]
    assert stream.text == "日本"
    assert not stream.pending


def test_invalid_bytes_become_replacement_characters():
    assert decode_complete(b"ok\xff\xfeok") == "ok\ufffd\ufffdok"


def test_binary_detection():
    assert is_probably_binary(b"\x00\x01\x02abc")
    assert not is_probably_binary("plain text, naïve".encode())
    assert not is_probably_binary(b"")


@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes_never_raises(data):
    stream = Utf8Stream()
    for i in range(0, len(data), 3):
        stream.feed(data[i:i + 3])
    assert stream.text == decode_complete(data)
    assert data.decode("utf-8", errors="replace").startswith(stream.text)


@given(st.text(max_size=100))
def test_decode_complete_inverts_encode(text):
    assert decode_complete(encode(text)) == encode(text).decode("utf-8", errors="replace")
