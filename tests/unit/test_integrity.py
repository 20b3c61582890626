"""Is a copy the listed message? Fingerprints without bookkeeping, sizes, stand-ins."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhaul.domain.fingerprint import fingerprint, legacy_fingerprint, matches
from mailhaul.domain.integrity import Received, StandIn, size_agrees, stand_in

HEAD = b"Message-ID: <1@example.net>\r\nSubject: hello\r\n\r\n"


def test_bookkeeping_fields_do_not_change_the_fingerprint():
    size = len(HEAD) + 100
    mailutils = (
        b"X-IMAPbase: 1700000000 3\r\nStatus: RO\r\nX-UID: 1\r\nX-UIDL: abc\r\n"
        b"X-Status: A\r\nX-Keywords: $Junk\r\nX-Mozilla-Status: 0001\r\n"
        b"X-Mozilla-Status2: 00000000\r\n"
    )
    rewritten = b"X-IMAPbase: 1700000999\r\n 5\r\nStatus: O\r\n"
    plain = fingerprint(HEAD, size)
    assert fingerprint(mailutils + HEAD, size + len(mailutils)) == plain
    assert fingerprint(rewritten + HEAD, size + len(rewritten)) == plain


def test_any_other_field_still_tells_messages_apart():
    size = len(HEAD) + 100
    other = b"X-Spam-Status: No\r\n"
    assert fingerprint(other + HEAD, size + len(other)) != fingerprint(HEAD, size)
    assert fingerprint(HEAD.replace(b"hello", b"hellO"), size) != fingerprint(HEAD, size)
    assert fingerprint(HEAD, size + 1) != fingerprint(HEAD, size)


def test_a_bookkeeping_field_goes_with_its_continuation_and_no_other_line_does():
    folded = b"X-IMAPbase: 1 2\r\n 3\r\n" + HEAD
    assert fingerprint(folded, 500 + len(folded) - len(HEAD)) == fingerprint(HEAD, 500)
    kept = b"Subject: one\r\n two\r\n" + HEAD
    assert fingerprint(kept, 500 + len(kept) - len(HEAD)) != fingerprint(HEAD, 500)


def test_prints_recorded_before_the_rule_are_still_recognised():
    with_status = b"Status: RO\r\n" + HEAD
    old = legacy_fingerprint(with_status, 300)
    assert old != fingerprint(with_status, 300)
    assert matches(with_status, 300, {old}) == old
    assert matches(HEAD, 300, {legacy_fingerprint(HEAD, 300)}) == fingerprint(HEAD, 300)
    assert matches(HEAD, 301, {old}) is None


@given(st.integers(0, 10_000), st.integers(0, 500))
def test_an_exact_size_or_lf_counted_size_agrees(listed, feeds):
    assert size_agrees(listed, Received(listed, feeds))
    assert size_agrees(listed, Received(listed + feeds, feeds))


@given(st.integers(1, 10_000), st.integers(1, 10_000), st.integers(0, 500))
def test_a_shorter_copy_never_agrees(listed, cut, feeds):
    assert not size_agrees(listed, Received(max(listed - cut, 0), feeds))


def test_courier_stand_ins_are_recognised_and_ordinary_mail_is_not():
    placeholder = (
        b"From: System Administrator <root@localhost>\r\nSubject: message unavailable\r\n\r\n"
    )
    wrapper = (
        b"From: Mail Delivery Subsystem <postmaster>\r\n"
        b"Subject: Cannot display Unicode content\r\nMime-Version: 1.0\r\n\r\n"
    )
    assert stand_in(placeholder) is StandIn.EXPUNGED
    assert stand_in(wrapper) is StandIn.UNICODE_WRAPPER
    assert stand_in(HEAD) is None
    only_subject = b"From: someone@example.org\r\nSubject: message unavailable\r\n\r\n"
    assert stand_in(only_subject) is None  # every field of the shape must match


def test_bookkeeping_a_server_adds_while_serving_may_be_missing_from_its_listed_size():
    # GNU Mailutils pop3d lists a message's size before it adds X-UIDL to what it sends.
    stored = HEAD + b"body\r\n"
    served = b"X-UIDL: 4f3a.1700000000.1\r\n" + stored
    feeds = served.count(b"\n")
    assert size_agrees(len(stored), Received(len(served), feeds, served))
    lf_stored = stored.replace(b"\r\n", b"\n")  # listed with LF line ends as well
    assert size_agrees(len(lf_stored), Received(len(served), feeds, served))
    other = b"X-Spam-Flag: YES\r\n" + stored  # not bookkeeping: a different message
    assert not size_agrees(len(stored), Received(len(other), feeds, other))


def test_each_bookkeeping_field_alone_is_left_out():
    for field in (b"X-Mozilla-Status: 0001", b"X-Mozilla-Status2: 0", b"status: RO", b"X-UID: 9"):
        alone = field + b"\r\n" + HEAD
        assert fingerprint(alone, 100 + len(alone) - len(HEAD)) == fingerprint(HEAD, 100), field
