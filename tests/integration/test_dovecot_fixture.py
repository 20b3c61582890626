"""Smoke tests of the Dovecot fixture, with the standard library's clients only."""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
import ssl

import pytest

from support.dovecot import DovecotServer, Mailbox

MESSAGE = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nbody\r\n"


def test_imap_starttls_and_imaps_verify_with_the_test_ca(
    dovecot: DovecotServer, mailbox: Mailbox
) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10) as imap:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ssl_context=dovecot.ssl_context())
        imap.login(mailbox.user, mailbox.password)
    with imaplib.IMAP4_SSL(
        "localhost", dovecot.imaps_port, ssl_context=dovecot.ssl_context(), timeout=10
    ) as imap:
        imap.login(mailbox.user, mailbox.password)
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(
            dovecot.host, dovecot.imaps_port, ssl_context=ssl.create_default_context(), timeout=10
        )


def test_pop3_stls_and_pop3s(dovecot: DovecotServer, mailbox: Mailbox) -> None:
    mailbox.deliver(MESSAGE)
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        pop.stls(context=dovecot.ssl_context())
        pop.user(mailbox.user)
        pop.pass_(mailbox.password)
        assert pop.stat()[0] == 1
        assert re.fullmatch(rb"\+OK 1 [0-9a-fA-F]{16}", pop.uidl(1))
    finally:
        pop.quit()
    pops = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=dovecot.ssl_context())
    try:
        pops.user(mailbox.user)
        pops.pass_(mailbox.password)
        assert b"\r\n".join(pops.retr(1)[1]) + b"\r\n" == MESSAGE
        pops.dele(1)
    finally:
        pops.quit()
    assert mailbox.list_messages() == []  # DELE + QUIT expunged it


def test_delivered_messages_and_flags(dovecot: DovecotServer, mailbox: Mailbox) -> None:
    mailbox.deliver(MESSAGE)
    mailbox.deliver(MESSAGE.replace(b"hello", b"read"), seen=True)
    mailbox.deliver(MESSAGE, folder="Archive/2024")
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10) as imap:
        imap.login(mailbox.user, mailbox.password)
        assert imap.select("INBOX") == ("OK", [b"2"])
        typ, flags = imap.fetch("1:*", "(FLAGS)")
        assert typ == "OK"
        assert flags == [b"1 (FLAGS (\\Recent))", b"2 (FLAGS (\\Seen \\Recent))"]
        imap.store("1", "+FLAGS", "(\\Deleted)")  # flagged, not expunged: still there
    stored = mailbox.list_messages()
    assert [m.raw for m in stored] == [MESSAGE, MESSAGE.replace(b"hello", b"read")]
    assert [(m.seen, m.deleted) for m in stored] == [(False, True), (True, False)]
    assert [m.raw for m in mailbox.list_messages("Archive/2024")] == [MESSAGE]


def test_reset_uidvalidity_keeps_the_messages(mailbox: Mailbox) -> None:
    mailbox.deliver(MESSAGE)
    before = mailbox.uidvalidity()
    after = mailbox.reset_uidvalidity()
    assert after != before
    assert mailbox.uidvalidity() == after
    assert [m.raw for m in mailbox.list_messages()] == [MESSAGE]


def test_lmtp_delivery_lands_in_the_inbox(dovecot: DovecotServer, mailbox: Mailbox) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=10) as lmtp:
        refused = lmtp.sendmail("sender@example.test", [mailbox.user], MESSAGE)
    assert refused == {}
    (stored,) = mailbox.list_messages()
    assert stored.raw.endswith(MESSAGE)
    assert f"Delivered-To: {mailbox.user}".encode() in stored.raw
    assert not stored.seen
