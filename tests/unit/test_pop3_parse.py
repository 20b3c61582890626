"""POP3 reply parsing: garbage and hostile listings become ProtocolViolation, never a crash."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhaul.adapters.sources.pop3.parsing import (
    check_argument,
    parse_capabilities,
    parse_reply,
    parse_scan_listing,
    parse_uid_listing,
    safe_text,
    scan_listing_by_line,
    uid_listing_by_line,
    unstuff_block,
)
from mailhaul.adapters.sources.wire import Wire
from mailhaul.domain.errors import ConfigError, ProtocolViolation
from mailhaul.domain.options import Protocol, SourceEndpoint


def test_status_lines_parse_with_response_codes() -> None:
    assert parse_reply(b"+OK\r\n").ok
    assert parse_reply(b"+OK 2 messages\r\n").text == "2 messages"
    reply = parse_reply(b"-ERR [IN-USE] mailbox locked\r\n")
    assert (reply.ok, reply.code, reply.text) == (False, "IN-USE", "[IN-USE] mailbox locked")
    assert parse_reply(b"-ERR [sys/temp] later\r\n").code == "SYS/TEMP"
    assert parse_reply(b"-ERR\r\n").code is None


@pytest.mark.parametrize("line", [b"HELLO\r\n", b"+OKAY\r\n", b"\r\n", b"* OK imap\r\n", b"+ \r\n"])
def test_anything_but_ok_or_err_is_a_violation(line: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="where \\+OK or -ERR was due"):
        parse_reply(line)


@given(st.binary(max_size=200))
def test_parse_reply_never_raises_anything_but_a_violation(line: bytes) -> None:
    with contextlib.suppress(ProtocolViolation):
        parse_reply(line)


def test_server_text_is_made_safe_to_log() -> None:
    assert safe_text(b"evil\x1b[31m\x00text") == "evil?[31m?text"
    assert safe_text(b"x" * 500, 10) == "x" * 10 + "…"
    assert safe_text(b"\xff") == "\ufffd"


def test_capabilities_are_upper_case_names_with_sasl_mechanisms() -> None:
    caps = parse_capabilities([b"top", b"SASL PLAIN LOGIN", b"EXPIRE 30", b"", b"Pipelining"])
    assert caps == {"TOP", "SASL", "AUTH=PLAIN", "AUTH=LOGIN", "EXPIRE", "PIPELINING"}


def test_listings_pair_numbers_sizes_and_uids() -> None:
    sizes = parse_scan_listing([b"1 120", b"2 5 extra info"])
    assert sizes == {1: 120, 2: 5}
    assert parse_uid_listing([b"2 b", b"1 a~!"], sizes) == {1: "a~!", 2: "b"}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([b"1"], "bad LIST line"),
        ([b"x 12"], "bad message number"),
        ([b"0 12"], "bad message number"),
        ([b"1 -5"], "bad message size"),
        ([b"1 1e3"], "bad message size"),
        ([b"1 \xd9\xa3"], "bad message size"),  # an Arabic-Indic digit: not ASCII
        ([b"1 " + b"9" * 5000], "bad message size"),
        ([b"1 10", b"1 20"], "twice"),
    ],
)
def test_bad_scan_listings_are_violations(lines: list[bytes], message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        parse_scan_listing(lines)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([b"1 a", b"1 b"], "twice"),
        ([b"1 a", b"3 c"], "which LIST does not"),
        ([b"1 a"], "no unique-id for message 2"),
        ([b"1 " + b"u" * 71, b"2 b"], "over 70"),
        ([b"1 a\x7f", b"2 b"], "outside 0x21-0x7E"),
        ([b"1 \xc3\xa9", b"2 b"], "outside 0x21-0x7E"),
        ([b"1 a b", b"2 b"], "bad UIDL line"),
        ([b"one a", b"2 b"], "bad message number"),
    ],
)
def test_bad_uid_listings_are_violations(lines: list[bytes], message: str) -> None:
    with pytest.raises(ProtocolViolation, match=message):
        parse_uid_listing(lines, {1: 10, 2: 20})


@given(st.lists(st.binary(max_size=30), max_size=5))
def test_listing_parsers_never_crash(lines: list[bytes]) -> None:
    with contextlib.suppress(ProtocolViolation):
        parse_uid_listing(lines, parse_scan_listing(lines))


def test_arguments_with_line_breaks_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as caught:
        check_argument("hunter2\r\nDELE 1", "password")
    assert "hunter2" not in str(caught.value)


# --- the fast paths agree with the line-by-line ones ------------------------------------

_LISTING_BYTES = st.sampled_from([b"0", b"1", b"2", b"9", b" ", b"\t", b"a", b"~", b"\x7f", b"\r"])
_LISTING_LINE = st.lists(_LISTING_BYTES, max_size=8).map(b"".join)
_NUMBERED_LINE = st.builds(lambda n, rest: b"%d %s" % (n, rest), st.integers(0, 5), _LISTING_LINE)


def _outcome(parse: Callable[[], object]) -> object:
    try:
        return parse()
    except ProtocolViolation:
        return ProtocolViolation


@given(st.lists(st.one_of(_NUMBERED_LINE, _LISTING_LINE), max_size=6))
def test_fast_listing_parsers_agree_with_the_line_by_line_ones(lines: list[bytes]) -> None:
    sizes = _outcome(lambda: parse_scan_listing(lines))
    assert sizes == _outcome(lambda: scan_listing_by_line(lines))
    known = sizes if isinstance(sizes, dict) else {n: 1 for n in range(1, 4)}
    assert _outcome(lambda: parse_uid_listing(lines, known)) == _outcome(
        lambda: uid_listing_by_line(lines, known)
    )


class _ChunkedSocket:
    """Hands the wire its bytes in the given pieces, one piece per recv()."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def recv(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def _wire_with(data: bytes, cuts: list[int]) -> Wire:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    wire = Wire(SourceEndpoint(Protocol.POP3, "127.0.0.1", 110))
    wire._sock = _ChunkedSocket([data[a:b] for a, b in itertools.pairwise(points)])  # type: ignore[assignment]
    return wire


_BLOCK_LINE = st.lists(st.sampled_from([b".", b"a", b"1", b" ", b"\r"]), max_size=6).map(b"".join)


@given(st.lists(_BLOCK_LINE, max_size=8), st.lists(st.integers(0, 200), max_size=6))
def test_a_multi_line_reply_read_in_one_block_gives_the_lines_in_any_pieces(
    lines: list[bytes], cuts: list[int]
) -> None:
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    data = b"".join(line + b"\r\n" for line in stuffed) + b".\r\n+OK next\r\n"
    wire = _wire_with(data, cuts)
    expected = [line.rstrip(b"\r") for line in lines]
    assert unstuff_block(wire.read_dot_block()) == expected
    assert wire.readline() == b"+OK next\r\n"  # nothing after the terminator was taken


def test_an_over_long_listing_line_is_refused_even_without_a_terminator() -> None:
    wire = _wire_with(b"1 " + b"u" * 5000, [100, 2000])
    with pytest.raises(ProtocolViolation, match="line over 1000 bytes"):
        wire.read_dot_block(line_limit=1000)
    wire = _wire_with(b"1 a\r\n2 " + b"u" * 5000 + b"\r\n.\r\n", [])
    with pytest.raises(ProtocolViolation, match="line over 1000 bytes"):
        wire.read_dot_block(line_limit=1000)
