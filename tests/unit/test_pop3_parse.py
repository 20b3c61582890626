"""POP3 reply parsing: garbage and hostile listings become ProtocolViolation, never a crash."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhaul.adapters.sources.pop3_wire import (
    check_argument,
    parse_capabilities,
    parse_reply,
    parse_scan_listing,
    parse_uid_listing,
    plain_initial_response,
    redact,
    safe_text,
)
from mailhaul.domain.errors import ConfigError, ProtocolViolation


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


def test_plain_response_and_redaction() -> None:
    response = plain_initial_response("alice", "pässword")
    assert base64.b64decode(response) == "\0alice\0pässword".encode()
    assert redact("bad pässword!", ("pässword", "")) == "bad ***!"
