"""LmtpSink against the real Dovecot: what lands in the mailbox, and every kind of refusal."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.adapters.sinks.lmtp import LmtpSink
from mailhaul.adapters.sinks.smtp_client import SmtpClient, parse_address
from mailhaul.domain.errors import (
    DestinationMissing,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from mailhaul.domain.ports import Delivery, DeliverySession
from support.dovecot import DovecotServer, Mailbox

RECEIVED = b"Received: from pop.example.net by mailhaul with POP3S\r\n\tfor <x@example.test>\r\n"
MESSAGE = (
    b"Return-Path: <bounce@example.net>\r\n"
    b"From: Ann <ann@example.net>\r\n"
    b"Message-ID: <lmtp-1@example.net>\r\n"
    b"Subject: over LMTP\r\n"
    b"\r\n"
    b".a line with a leading dot\r\n"
    b".\r\n"
    b"8-bit \xc3\xa9 text\r\n"
)
QUOTA = """
mail_plugins = $mail_plugins quota
plugin {
  quota = maildir:User quota
  quota_rule = *:storage=4K
}
lmtp_rcpt_check_quota = yes
"""


def deliver(session: DeliverySession, dest: str, chunks: list[bytes]) -> None:
    delivery: Delivery = session.begin(dest, None)  # commit() as the protocol promises
    try:
        delivery.write(RECEIVED)
        for chunk in chunks:
            delivery.write(chunk)
        assert delivery.commit() is None
    except BaseException:
        delivery.abort()
        raise


@pytest.fixture
def session(dovecot: DovecotServer) -> Iterator[DeliverySession]:
    """One run's delivery session of an LMTP sink."""
    s = LmtpSink(f"{dovecot.host}:{dovecot.lmtp_port}", timeout=10)
    run = s.open_session("1")
    yield run
    run.close()
    s.close()


def test_message_lands_byte_exact_after_dovecots_own_headers(
    session: DeliverySession, mailbox: Mailbox
) -> None:
    deliver(session, mailbox.user, [MESSAGE[:3], MESSAGE[3:140], MESSAGE[140:]])
    (stored,) = mailbox.list_messages()
    assert stored.raw.endswith(RECEIVED + MESSAGE)
    added = stored.raw[: -len(RECEIVED + MESSAGE)]
    # Dovecot prepends Return-Path (our envelope sender), Delivered-To and its Received.
    assert added.startswith(b"Return-Path: <bounce@example.net>\r\nDelivered-To: ")
    assert not stored.seen
    assert session.planned_receipt(mailbox.user, "1") is None
    assert session.was_delivered(mailbox.user, "x") is None


def test_unix_socket_and_connection_reuse(dovecot: DovecotServer, mailbox: Mailbox) -> None:
    path = (dovecot.root / "srv").resolve() / "run" / "lmtp"
    sink = LmtpSink(str(path), timeout=10, sender="")
    try:
        run = sink.open_session("1")
        for n in range(3):
            deliver(run, mailbox.user, [MESSAGE.replace(b"lmtp-1", b"lmtp-%d" % n)])
        client = run._client
        assert client is not None
        deliver(run, mailbox.user, [MESSAGE])
        assert run._client is client  # the same connection, after RSET
        run.close()
        next_run = sink.open_session("2")
        deliver(next_run, mailbox.user, [MESSAGE])
        assert next_run._client is client  # the next run takes it from the sink
        next_run.close()
    finally:
        sink.close()
    assert not client.connected  # closing the sink QUIT the idle connection
    stored = mailbox.list_messages()
    assert len(stored) == 5
    assert all(m.raw.startswith(b"Return-Path: <>\r\n") for m in stored)


def test_unknown_user_is_destination_missing(
    dovecot: DovecotServer, session: DeliverySession, mailbox: Mailbox
) -> None:
    nobody = "nobody-here@example.test"
    delivery = session.begin(nobody, None)
    delivery.write(RECEIVED)
    with pytest.raises(DestinationMissing, match=r"550 5\.1\.1"):
        delivery.write(MESSAGE)  # the write that completes the header opens the transaction
    delivery.abort()
    fixed = LmtpSink(f"{dovecot.host}:{dovecot.lmtp_port}", timeout=10, sender="a@example.net")
    try:
        fixed_run = fixed.open_session("1")
        with pytest.raises(DestinationMissing, match="User doesn't exist"):
            fixed_run.begin(nobody, None)  # a fixed sender: RCPT is sent by begin()
        deliver(fixed_run, mailbox.user, [MESSAGE])  # the connection survived the refusal
        fixed_run.close()
    finally:
        fixed.close()
    deliver(session, mailbox.user, [MESSAGE])
    assert len(mailbox.list_messages()) == 2


def test_abort_mid_message_delivers_nothing(session: DeliverySession, mailbox: Mailbox) -> None:
    delivery = session.begin(mailbox.user, None)
    delivery.write(RECEIVED)
    delivery.write(MESSAGE)
    delivery.write(b"the source failed here\r\n")
    delivery.abort()
    deliver(session, mailbox.user, [MESSAGE])
    assert [m.raw.endswith(RECEIVED + MESSAGE) for m in mailbox.list_messages()] == [True]


def test_two_recipients_on_one_connection_get_one_reply_each(
    dovecot: DovecotServer, mailbox: Mailbox
) -> None:
    other = dovecot.new_mailbox()
    client = SmtpClient(parse_address(f"{dovecot.host}:{dovecot.lmtp_port}", 24), 10, lmtp=True)
    client.connect()
    try:
        assert client.mail("a@example.net").code == 250
        assert client.rcpt(mailbox.user).code == 250
        assert client.rcpt("nobody-here@example.test").code == 550
        assert client.rcpt(other.user).code == 250
        assert client.data().code == 354
        client.write(MESSAGE)
        replies = client.end_data()
        assert [r.code for r in replies] == [250, 250]
        assert mailbox.user in replies[0].text
        assert other.user in replies[1].text
        assert client.rset().code == 250  # still in step
    finally:
        client.quit()
    for box in (mailbox, other):
        assert [m.raw.endswith(MESSAGE) for m in box.list_messages()] == [True]


def test_closed_port_is_temporary(mailbox: Mailbox) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = LmtpSink(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(TemporaryDeliveryError, match="cannot connect"):
        sink.open_session("1").begin(mailbox.user, None)
    sink = LmtpSink("/nonexistent/lmtp", timeout=2)
    with pytest.raises(TemporaryDeliveryError, match="cannot connect"):
        sink.open_session("1").begin(mailbox.user, None)


def test_quota_refusals_are_permanent_and_a_stopped_server_temporary(tmp_path: Path) -> None:
    with DovecotServer(tmp_path / "quota", extra_config=QUOTA) as server:
        box = server.new_mailbox()
        sink = LmtpSink(f"{server.host}:{server.lmtp_port}", timeout=10).open_session("1")
        try:
            big = MESSAGE + b"x" * 6000 + b"\r\n"
            with pytest.raises(PermanentDeliveryError, match=r"552 5\.2\.2") as after_data:
                deliver(sink, box.user, [big])  # over quota: refused after DATA
            assert "refused the message" in str(after_data.value)
            delivered, refusal = 0, None
            for _ in range(40):  # fill it until RCPT is refused
                try:
                    deliver(sink, box.user, [MESSAGE + b"y" * 100 + b"\r\n"])
                    delivered += 1
                except PermanentDeliveryError as exc:
                    if "refused the recipient" in str(exc):
                        refusal = exc
                        break
            assert refusal is not None
            assert "Quota exceeded" in str(refusal)
            assert not isinstance(refusal, DestinationMissing)  # full is not missing
            assert len(box.list_messages()) == delivered > 0
            server.stop()
            with pytest.raises(TemporaryDeliveryError):
                deliver(sink, box.user, [MESSAGE])  # the kept connection is gone, no server
        finally:
            sink.close()
