"""The streaming DATA encoder (dot-stuffing, CRLF) and CRLF → LF, across any chunk boundaries."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhaul.adapters.sinks.envelope import HeaderBuffer, sender_from_header
from mailhaul.adapters.sinks.transforms import (
    CrlfToLf,
    DataEncoder,
    decode_data,
    encode_data,
)

# Bytes rich in what matters: dots, CR, LF, at line starts and chunk ends.
message_bytes = st.lists(
    st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"..", b"a", b"\r\n.\r\n", b"\n.\n", b"x\xff"]),
    max_size=60,
).map(b"".join) | st.binary(max_size=200)
cuts = st.lists(st.integers(0, 400), max_size=10)


def _chunks(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _reference_lines(data: bytes) -> bytes:
    """Every line end (CRLF, bare LF, bare CR) as CRLF, and a final CRLF if missing."""
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return text if text == b"" or text.endswith(b"\r\n") else text + b"\r\n"


@settings(max_examples=400, deadline=None)
@given(message_bytes, cuts)
def test_chunking_does_not_change_the_encoding(data: bytes, points: list[int]) -> None:
    encoder = DataEncoder()
    out = b"".join(encoder.feed(c) for c in _chunks(data, points)) + encoder.finish()
    assert out == encode_data(data)
    assert encoder.size == len(out) - 3


@settings(max_examples=400, deadline=None)
@given(message_bytes, cuts)
def test_the_receiver_gets_the_message_back(data: bytes, points: list[int]) -> None:
    encoder = DataEncoder()
    out = b"".join(encoder.feed(c) for c in _chunks(data, points)) + encoder.finish()
    # Only CRLF line ends, and the terminator only at the very end.
    assert out.replace(b"\r\n", b"").count(b"\r") == 0
    assert out.replace(b"\r\n", b"").count(b"\n") == 0
    assert (b"\r\n" + out).find(b"\r\n.\r\n") == len(out) - 3
    assert decode_data(out) == _reference_lines(data)


@settings(max_examples=200, deadline=None)
@given(message_bytes, cuts)
def test_crlf_to_lf_whatever_the_chunking(data: bytes, points: list[int]) -> None:
    conv = CrlfToLf()
    out = b"".join(conv.feed(c) for c in _chunks(data, points)) + conv.finish()
    assert out == data.replace(b"\r\n", b"\n")


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"", b".\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.\nb\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"..x\r\n", b"...x\r\n.\r\n"),
        (b"a\r.\r\n", b"a\r\n..\r\n.\r\n"),
    ],
)
def test_examples(message: bytes, wire: bytes) -> None:
    assert encode_data(message) == wire


@settings(max_examples=200, deadline=None)
@given(message_bytes, cuts)
def test_header_buffer_finds_the_same_header_whatever_the_chunking(
    data: bytes, points: list[int]
) -> None:
    whole = HeaderBuffer()
    whole.add(data)
    pieces = HeaderBuffer()
    for chunk in _chunks(data, points):
        pieces.add(chunk)
        if pieces.complete:
            break
    assert pieces.complete == whole.complete
    assert pieces.header() == whole.header()


@pytest.mark.parametrize(
    ("header", "sender"),
    [
        (b"Received: x\r\nReturn-Path: <b@x.test>\r\nFrom: a@y.test\r\n\r\n", "b@x.test"),
        (b"From: Ann <a@y.test>\r\n\r\n", "a@y.test"),
        (b"From: =?utf-8?q?Ann?=\r\n <a@y.test>\r\n\r\n", "a@y.test"),
        (b"Return-Path: <>\r\nFrom: a@y.test\r\n\r\n", ""),
        (b"Subject: none\r\n\r\n", ""),
        (b"From: a@y.test>\r\nRCPT TO:<evil@z>\r\n\r\n", "a@y.test"),
        (b"Return-Path: <a b@x.test>\r\n\r\n", ""),
        (b"Return-Path: <-oQ@x.test>\r\n\r\n", ""),
    ],
)
def test_sender_from_header(header: bytes, sender: str) -> None:
    assert sender_from_header(header) == sender
