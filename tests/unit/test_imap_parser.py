"""The pure IMAP pieces: response parser, modified UTF-7 and UID sets."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhaul.adapters.sources.imap.commands import (
    can_quote,
    compress_uids,
    expand_uid_set,
    quote,
)
from mailhaul.adapters.sources.imap.parser import (
    Continuation,
    Fetch,
    ResponseAssembler,
    Status,
    Streamed,
    Untagged,
    parse_response,
    parse_values,
)
from mailhaul.domain.errors import ProtocolViolation
from mailhaul.domain.imap_utf7 import Utf7Error, decode_mailbox, encode_mailbox

# --- status responses --------------------------------------------------------------------


def test_dovecot_greeting_carries_capabilities() -> None:
    greeting = parse_response(
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
        b" STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n"
    )
    assert isinstance(greeting, Status)
    assert greeting.tag is None
    assert greeting.kind == "OK"
    assert greeting.code == "CAPABILITY"
    assert "LITERAL+" in greeting.code_args
    assert "AUTH=PLAIN" in greeting.code_args
    assert greeting.text == "Dovecot (Debian) ready."


def test_exchange_greeting_with_brackets_in_text_has_no_code() -> None:
    greeting = parse_response(b"* OK The Microsoft Exchange IMAP4 service is ready. [TQBXAA==]")
    assert isinstance(greeting, Status)
    assert greeting.code is None
    assert greeting.text.endswith("[TQBXAA==]")


def test_uidvalidity_and_permanentflags_codes() -> None:
    uidvalidity = parse_response(b"* OK [UIDVALIDITY 3857529045] UIDs valid")
    assert isinstance(uidvalidity, Status)
    assert (uidvalidity.code, uidvalidity.code_args) == ("UIDVALIDITY", (3857529045,))
    flags = parse_response(b"* OK [PERMANENTFLAGS (\\Answered \\Seen \\*)] Flags permitted.")
    assert isinstance(flags, Status)
    assert flags.code_args == (["\\Answered", "\\Seen", "\\*"],)


def test_tagged_responses() -> None:
    done = parse_response(b"M3 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n")
    assert done == Status("M3", "OK", "READ-WRITE", (), "Select completed (0.001 + 0.000 secs).")
    refused = parse_response(b"M1 no [AUTHENTICATIONFAILED] Authentication failed.")
    assert isinstance(refused, Status)
    assert (refused.kind, refused.code) == ("NO", "AUTHENTICATIONFAILED")
    gmail = parse_response(b"M2 OK user@gmail.com authenticated (Success)")
    assert isinstance(gmail, Status)
    assert gmail.text == "user@gmail.com authenticated (Success)"


def test_untagged_bye_and_continuation() -> None:
    bye = parse_response(b"* BYE Server shutting down")
    assert bye == Status(None, "BYE", None, (), "Server shutting down")
    assert parse_response(b"+ Ready for literal data\r\n") == Continuation("Ready for literal data")
    assert parse_response(b"+\r\n") == Continuation("")


def test_unbalanced_text_in_status_is_not_parsed() -> None:
    status = parse_response(b'* NO (unbalanced "text {5}')
    assert isinstance(status, Status)
    assert status.text == '(unbalanced "text {5}'


# --- untagged data -----------------------------------------------------------------------


def test_exists_expunge_flags_capability() -> None:
    assert parse_response(b"* 23 EXISTS") == Untagged("EXISTS", 23, ())
    assert parse_response(b"* 5 expunge") == Untagged("EXPUNGE", 5, ())
    flags = parse_response(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)")
    assert flags == Untagged(
        "FLAGS", None, (["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "$Junk"],)
    )
    caps = parse_response(b"* CAPABILITY IMAP4rev1 UIDPLUS LITERAL+")
    assert caps == Untagged("CAPABILITY", None, ("IMAP4rev1", "UIDPLUS", "LITERAL+"))


def test_list_responses_quoted_nil_and_literal_names() -> None:
    gmail = parse_response(b'* LIST (\\HasNoChildren \\All) "/" "[Gmail]/All Mail"')
    assert gmail == Untagged(
        "LIST", None, (["\\HasNoChildren", "\\All"], b"/", b"[Gmail]/All Mail")
    )
    flat = parse_response(b"* LIST (\\Noselect) NIL INBOX")
    assert flat == Untagged("LIST", None, (["\\Noselect"], None, "INBOX"))
    literal = parse_response(b'* LIST () "." {11}\r\n', b'odd "name"\n', b"\r\n")
    assert literal == Untagged("LIST", None, ([], b".", b'odd "name"\n'))


def test_quoted_string_escapes() -> None:
    assert parse_values(b'"a \\"b\\" \\\\ c" ""') == [b'a "b" \\ c', b""]


def test_nested_lists_nil_and_numbers() -> None:
    values = parse_values(
        b'(1 (2 NIL "x") ((nil)) "NIL") 12345678901234567890 123456789012345678901'
    )
    assert values == [
        [1, [2, None, b"x"], [[None]], b"NIL"],
        12345678901234567890,
        "123456789012345678901",
    ]


# --- FETCH -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"* 12 FETCH (UID 34 FLAGS (\\Seen $Forwarded) RFC822.SIZE 5678)",
        b"* 12 FETCH (UID 34 RFC822.SIZE 5678 FLAGS (\\Seen $Forwarded))",
        b"* 12 FETCH (RFC822.SIZE 5678 FLAGS (\\Seen $Forwarded) UID 34)",
        b"* 12 fetch (uid 34 flags (\\Seen $Forwarded) rfc822.size 5678)",
        b'* 12 FETCH (X-GM-THRID 1278455344230334865 X-GM-LABELS (\\Important "Muy")'
        b" UID 34 RFC822.SIZE 5678 FLAGS (\\Seen $Forwarded) MODSEQ (4))",
    ],
)
def test_listing_lines_in_any_order_and_case(line: bytes) -> None:
    fetch = parse_response(line + b"\r\n")
    assert isinstance(fetch, Fetch)
    assert (fetch.seq, fetch.uid(), fetch.size()) == (12, 34, 5678)
    assert fetch.flags() == frozenset({"\\Seen", "$Forwarded"})
    assert fetch.seen()


def test_fast_and_general_paths_agree() -> None:
    fast = parse_response(b"* 1 FETCH (UID 7 FLAGS () RFC822.SIZE 0)")
    general = parse_response(b"* 1 FETCH (UID 7 FLAGS () RFC822.SIZE 0 INTERNALDATE NIL)")
    assert isinstance(fast, Fetch)
    assert isinstance(general, Fetch)
    assert (fast.uid(), fast.size(), fast.flags(), fast.seen()) == (7, 0, frozenset(), False)
    assert (general.uid(), general.size(), general.flags()) == (7, 0, frozenset())


def test_body_literal_with_uid_after_it_exchange_style() -> None:
    body = b'Subject: x\r\n\r\n)("{3}\r\n'
    fetch = parse_response(
        b"* 3 FETCH (BODY[] {%d}\r\n" % len(body), body, b" UID 45 FLAGS (\\Seen))\r\n"
    )
    assert isinstance(fetch, Fetch)
    assert fetch.uid() == 45
    assert fetch.section("BODY[]") == ("BODY[]", body)


def test_assembler_reports_the_pending_body_item_and_partial_items() -> None:
    assembler = ResponseAssembler(b"* 3 FETCH (UID 9 FLAGS (\\Seen) BODY[] {52428800}\r\n")
    assert assembler.literal_needed == 52428800
    assert assembler.pending_item() == "BODY[]"
    assert assembler.partial_items() == {"UID": 9, "FLAGS": ["\\Seen"]}
    assembler.feed_literal(Streamed(52428800))
    assembler.feed_line(b")\r\n")
    result = assembler.result()
    assert isinstance(result, Fetch)
    assert result.items["BODY[]"] == Streamed(52428800)


def test_nested_literal_is_not_a_body_item() -> None:
    assembler = ResponseAssembler(b'* 1 FETCH (ENVELOPE ("date" {5}')
    assert assembler.literal_needed == 5
    assert assembler.pending_item() is None


def test_header_fields_section_with_spaces_and_origin() -> None:
    fetch = parse_response(
        b"* 2 FETCH (UID 8 BODY[HEADER.FIELDS (FROM TO)] {4}\r\n", b"a\r\n\r", b" BODY[]<0> NIL)"
    )
    assert isinstance(fetch, Fetch)
    assert fetch.items["BODY[HEADER.FIELDS (FROM TO)]"] == b"a\r\n\r"
    assert fetch.section("BODY[]", "BODY[]<0>") == ("BODY[]<0>", None)


def test_bodystructure_nested_lists() -> None:
    fetch = parse_response(
        b'* 1 FETCH (UID 1 BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL'
        b' "7BIT" 12 1 NIL NIL NIL) "MIXED" ("BOUNDARY" "x") NIL NIL))'
    )
    assert isinstance(fetch, Fetch)
    structure = fetch.items["BODYSTRUCTURE"]
    assert isinstance(structure, list)
    assert structure[1] == b"MIXED"


def test_binary_literal8_marker() -> None:
    assembler = ResponseAssembler(b"* 1 FETCH (UID 2 BINARY[] ~{3}")
    assert (assembler.literal_needed, assembler.pending_item()) == (3, "BINARY[]")


# --- malformed input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ((b"* 1 FETCH (UID 1 FLAGS (\\Seen)",), "unbalanced '('"),
        ((b"* 1 FETCH (UID 1))",), "unbalanced ')'"),
        ((b"* 1 FETCH (UID 1 BODY[] {12x}",), "literal size is not a number"),
        ((b"* 1 FETCH (UID 1 BODY[] {12} UID 3)",), "malformed literal"),
        ((b'* LIST () "/" "unterminated',), "unterminated quoted string"),
        ((b"* 1 FETCH (UID 1 BODY[HEADER",), "unbalanced '['"),
        ((b"hello world",), "malformed tagged response"),
        ((b"garbage",), "malformed response line"),
        ((b"M1 MAYBE later",), "malformed tagged response"),
        ((b"* 99999999999 EXISTS",), "bad message number"),
        ((b"* 1 FETCH (UID)",), "FETCH item without a value"),
        ((b"* 1 FETCH UID 3",), "malformed FETCH response"),
        ((b"* 1 FETCH ((UID) 3)",), "bad FETCH item name"),
        ((b"* LIST (\\x\x01) NIL x",), "unexpected"),
        ((b"* 1 %%% x",), "malformed untagged response"),
        ((b"* LIST () {3}", b"abc"), "response ends after a literal"),
        ((b"* LIST () {3}", b"ab", b")"), "literal length does not match"),
    ],
)
def test_malformed_responses_raise_protocol_violation(
    segments: tuple[bytes, ...], message: str
) -> None:
    with pytest.raises(ProtocolViolation, match=re.escape(message)):
        parse_response(*segments)


@pytest.mark.parametrize(
    "line",
    [b"* 1 FETCH (UID abc)", b"* 1 FETCH (UID 0)", b"* 1 FETCH (UID 4294967296)"],
)
def test_invalid_uid_values(line: bytes) -> None:
    fetch = parse_response(line)
    assert isinstance(fetch, Fetch)
    with pytest.raises(ProtocolViolation, match="invalid UID"):
        fetch.uid()


def test_invalid_size_and_flags_values() -> None:
    fetch = parse_response(b'* 1 FETCH (RFC822.SIZE "big" FLAGS \\Seen)')
    assert isinstance(fetch, Fetch)
    with pytest.raises(ProtocolViolation, match=r"RFC822\.SIZE"):
        fetch.size()
    with pytest.raises(ProtocolViolation, match="FLAGS"):
        fetch.flags()


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_protocol_violation(data: bytes) -> None:
    try:
        assembler = ResponseAssembler(data)
        if assembler.literal_needed is None:
            assembler.result()
    except ProtocolViolation:
        pass


@given(st.binary(max_size=100).filter(can_quote))
def test_quote_round_trips_through_the_parser(value: bytes) -> None:
    assert parse_values(quote(value)) == [value]


def test_quote_refuses_what_a_quoted_string_cannot_carry() -> None:
    for value in (b"a\r\nb", b"\xc3\xa9", b"\0"):
        assert not can_quote(value)
        with pytest.raises(ValueError, match="quoted"):
            quote(value)


# --- modified UTF-7 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decoded", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("A & B", "A &- B"),
        ("~peter/mail/日本語/台北", "~peter/mail/&ZeVnLIqe-/&U,BTFw-"),
        ("Çà va", "&AMcA4A- va"),
        ("😀", "&2D3eAA-"),
        ("", ""),
    ],
)
def test_modified_utf7_known_names(decoded: str, encoded: str) -> None:
    assert encode_mailbox(decoded) == encoded
    assert decode_mailbox(encoded) == decoded


@pytest.mark.parametrize("bad", ["&", "&ZeV", "&!!-", "tab\there", "&AA-", "&2D0-", "é"])
def test_modified_utf7_rejects_malformed_names(bad: str) -> None:
    with pytest.raises(Utf7Error):
        decode_mailbox(bad)


def test_modified_utf7_rejects_lone_surrogates() -> None:
    with pytest.raises(Utf7Error):
        encode_mailbox("a\ud800b")


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_modified_utf7_round_trip(name: str) -> None:
    encoded = encode_mailbox(name)
    assert all(" " <= char <= "~" for char in encoded)
    assert decode_mailbox(encoded) == name


# --- UID sets ----------------------------------------------------------------------------


def test_compress_uids_example() -> None:
    assert compress_uids([12, 1, 2, 3, 4, 5, 7, 9, 10, 11, 3]) == ["1:5,7,9:12"]
    assert compress_uids([]) == []
    with pytest.raises(ValueError, match="positive"):
        compress_uids([0, 1])


@given(
    st.sets(st.integers(min_value=1, max_value=2**32 - 1), max_size=300),
    st.integers(min_value=21, max_value=400),
)
def test_compress_uids_covers_exactly_and_respects_the_length(
    uids: set[int], max_length: int
) -> None:
    sets = compress_uids(uids, max_length)
    covered: set[int] = set()
    for uid_set in sets:
        assert len(uid_set) <= max_length
        part = expand_uid_set(uid_set)
        assert not covered & part
        covered |= part
    assert covered == uids


@given(st.lists(st.integers(min_value=1, max_value=5000), max_size=2000))
def test_compress_uids_merges_runs(uids: list[int]) -> None:
    (joined,) = compress_uids(uids, max_length=10**6) or [""]
    parts = joined.split(",") if joined else []
    bounds = [tuple(int(x) for x in p.split(":")) for p in parts]
    for previous, following in itertools.pairwise(bounds):
        assert following[0] > previous[-1] + 1  # sorted, disjoint, never adjacent


def test_search_responses_take_the_fast_path_and_empty_ones_work() -> None:
    from mailhaul.adapters.sources.imap.parser import ResponseAssembler, Untagged

    full = ResponseAssembler(b"* SEARCH 1 2 30 4000000000\r\n").result()
    assert full == Untagged("SEARCH", None, (1, 2, 30, 4000000000))
    empty = ResponseAssembler(b"* SEARCH\r\n").result()
    assert isinstance(empty, Untagged)
    assert empty.values == ()
