"""The streaming POP3 dot-unstuffer: exact bytes out, stops exactly at the terminator."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailhaul.adapters.sources.pop3.parsing import DotUnstuffer

NEXT_REPLY = b"+OK next reply\r\n"


def as_sent(message: bytes) -> bytes:
    """What a POP3 server sends after +OK: CRLF-completed, dot-stuffed, terminated."""
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line[:1] == b"." else line for line in lines) + b".\r\n"


def as_received(message: bytes) -> bytes:
    """What the client must hand on: the message, with the CRLF the server added."""
    return message + b"\r\n" if message and not message.endswith(b"\r\n") else message


def decode(wire: bytes, cuts: list[int], window: int | None = None) -> tuple[bytes, bytes]:
    """Feed ``wire`` to a decoder as it arrives in pieces cut at ``cuts``.

    Mirrors how the client uses it: unconsumed bytes stay in the buffer and are fed again
    with more appended. ``window`` caps how much is fed at once. Returns (decoded bytes,
    bytes left after the terminator).
    """
    bounds = sorted({c for c in cuts if 0 < c < len(wire)})
    pieces = [wire[a:b] for a, b in zip([0, *bounds], [*bounds, len(wire)], strict=True)]
    decoder = DotUnstuffer()
    buffer = b""
    out: list[bytes] = []
    while not decoder.done:
        chunk, used = decoder.feed(buffer if window is None else buffer[:window])
        assert used <= len(buffer)
        out.append(chunk)
        buffer = buffer[used:]
        if not used and not decoder.done:
            assert pieces, "decoder wanted bytes beyond the terminator"
            assert len(buffer) < 5, "decoder stalled on enough bytes"
            buffer += pieces.pop(0)
    return b"".join(out), buffer + b"".join(pieces)


TRICKY = [
    b".",
    b"..",
    b"...",
    b".\r\n",
    b"..\r\n",
    b"\r\n.\r\n",
    b"\r\n..\r\n",
    b"\r",
    b"\n",
    b"\r\n",
    b"\n.\n",
    b"\r.\r\n",
    b"\x00\xff\x80",
    b"x" * 300,
]
segments = st.one_of(st.sampled_from(TRICKY), st.binary(max_size=40))
messages = st.lists(segments, max_size=30).map(b"".join)
cut_lists = st.lists(st.integers(min_value=0, max_value=2000), max_size=40)


@settings(max_examples=600)
@given(message=messages, cuts=cut_lists, tail=st.binary(max_size=20))
@example(message=b"", cuts=[], tail=b"")
@example(message=b".", cuts=[1], tail=b"")
@example(message=b".\r\n.\r\n", cuts=[1, 2, 3, 4, 5, 6], tail=b".\r\n")
@example(message=b"abc", cuts=[3, 4], tail=b"")
@example(message=b"a\r\n.\r\nb", cuts=[2, 3, 4, 5], tail=b"\r\n.\r\n")
def test_any_message_cut_anywhere_round_trips(message: bytes, cuts: list[int], tail: bytes) -> None:
    wire = as_sent(message)
    decoded, left = decode(wire + NEXT_REPLY + tail, cuts)
    assert decoded == as_received(message)
    assert left == NEXT_REPLY + tail


@settings(max_examples=300)
@given(message=messages, cuts=cut_lists, window=st.integers(min_value=5, max_value=64))
def test_feeding_a_capped_window_round_trips(message: bytes, cuts: list[int], window: int) -> None:
    decoded, left = decode(as_sent(message) + NEXT_REPLY, cuts, window)
    assert decoded == as_received(message)
    assert left == NEXT_REPLY


@settings(max_examples=100)
@given(message=messages)
def test_byte_at_a_time_round_trips(message: bytes) -> None:
    wire = as_sent(message)
    decoded, left = decode(wire + NEXT_REPLY, list(range(len(wire) + 20)))
    assert decoded == as_received(message)
    assert left == NEXT_REPLY


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b".\r\n", b""),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.\r\n", b"..\r\n"),
        (b"a\r\n..\r\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n"),
        (b".x\r\n.\r\n", b".x\r\n"),  # unstuffed dot from a sloppy server: kept
        (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n"),  # bare LF is not a line break in POP3
        (b"\xff\x00\r\n.\r\n", b"\xff\x00\r\n"),
    ],
)
def test_known_cases(wire: bytes, expected: bytes) -> None:
    assert decode(wire, [])[0] == expected


def test_long_line_is_passed_in_large_pieces_not_per_line() -> None:
    line = b"y" * 1_000_000
    decoder = DotUnstuffer()
    out, used = decoder.feed(line)
    assert out == line
    assert used == len(line)
    out, used = decoder.feed(b"\r\n.\r\n")
    assert (out, used, decoder.done) == (b"\r\n", 5, True)


def test_nothing_is_consumed_after_the_end() -> None:
    decoder = DotUnstuffer()
    assert decoder.feed(b".\r\n+OK") == (b"", 3)
    assert decoder.done
    assert decoder.feed(b"+OK") == (b"", 0)
