"""SmtpSink against a real SMTP server (aiosmtpd) answering as each test directs."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.adapters.sinks.smtp import SmtpSink
from mailhaul.adapters.sinks.smtp_client import parse_address
from mailhaul.domain.errors import (
    ConfigError,
    DestinationMissing,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from mailhaul.domain.ports import Delivery, DeliverySession
from support.dovecot import write_certificates
from support.smtp_server import Handler, SmtpTestServer

RECEIVED = b"Received: from pop.example.net by mailhaul with POP3S\r\n\tfor <to@example.test>\r\n"
MESSAGE = (
    b"Return-Path: <bounce@example.net>\r\n"
    b"From: Ann <ann@example.net>\r\n"
    b"Subject: dots\r\n"
    b"\r\n"
    b".leading dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"8-bit \xe9\xff and the end\r\n"
)
DEST = "to@example.test"


def deliver(to: SmtpSink | DeliverySession, chunks: list[bytes], dest: str = DEST) -> None:
    """Deliver one message in a run's session (a sink: in a session of its own)."""
    session = to.open_session("1") if isinstance(to, SmtpSink) else to
    delivery: Delivery = session.begin(dest, None)  # commit() as the protocol promises
    try:
        delivery.write(RECEIVED)
        for chunk in chunks:
            delivery.write(chunk)
        assert delivery.commit() is None
    except BaseException:
        delivery.abort()
        raise
    finally:
        if session is not to:
            session.close()


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def server(handler: Handler) -> Iterator[SmtpTestServer]:
    with SmtpTestServer(handler) as srv:
        yield srv


@pytest.fixture
def session(server: SmtpTestServer) -> Iterator[DeliverySession]:
    """One run's delivery session of an SMTP sink."""
    s = SmtpSink(server.address, timeout=5)
    run = s.open_session("1")
    yield run
    run.close()
    s.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    root = tmp_path_factory.mktemp("certs")
    ca, cert, key = root / "ca.pem", root / "cert.pem", root / "key.pem"
    write_certificates(ca, cert, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return ca, context


def test_message_arrives_byte_for_byte_dot_stuffing_round_trip(
    session: DeliverySession, handler: Handler
) -> None:
    # Split everywhere that matters: inside CRLF, right before a dot at a line start.
    cuts = [MESSAGE[:5], MESSAGE[5:70], MESSAGE[70:99], MESSAGE[99:100], MESSAGE[100:]]
    deliver(session, cuts)
    (got,) = handler.messages
    assert got.data == RECEIVED + MESSAGE
    assert got.mail_from == "bounce@example.net"  # Return-Path beats From:
    assert got.rcpt_tos == [DEST]


def test_envelope_sender_from_header_or_fixed(server: SmtpTestServer, handler: Handler) -> None:
    no_return_path = MESSAGE.replace(b"Return-Path: <bounce@example.net>\r\n", b"")
    sink = SmtpSink(server.address, timeout=5)
    fixed = SmtpSink(server.address, timeout=5, sender="")
    try:
        deliver(sink, [no_return_path])
        deliver(sink, [b"Subject: nobody sent this\r\n\r\nbody\r\n"])
        deliver(fixed, [MESSAGE])
    finally:
        sink.close()
        fixed.close()
    assert [m.mail_from for m in handler.messages] == ["ann@example.net", "<>", "<>"]


def test_bare_lf_becomes_crlf_and_last_line_is_ended(
    session: DeliverySession, handler: Handler
) -> None:
    deliver(session, [b"Subject: lf\n\n.a\nb"])
    assert handler.messages[0].data == RECEIVED + b"Subject: lf\r\n\r\n.a\r\nb\r\n"


def test_one_connection_is_reused_for_several_messages(
    session: DeliverySession, handler: Handler
) -> None:
    for n in range(3):
        deliver(session, [MESSAGE + b"%d\r\n" % n])
    assert len(handler.messages) == 3
    assert handler.hellos == 1


def test_451_at_rcpt_is_temporary_550_is_destination_missing(
    session: DeliverySession, handler: Handler
) -> None:
    handler.rcpt_replies = {
        "busy@example.test": "451 4.3.0 try later",
        "gone@example.test": "550 5.1.1 no such user",
        "relay@example.test": "554 5.7.1 relay denied",
    }
    with pytest.raises(TemporaryDeliveryError, match=r"451 4\.3\.0 try later"):
        deliver(session, [MESSAGE], "busy@example.test")
    # The sender comes from the header, so the refusal comes from the write() that ends it.
    delivery = session.begin("gone@example.test", None)
    delivery.write(RECEIVED)
    with pytest.raises(DestinationMissing, match=r"550 5\.1\.1 no such user"):
        delivery.write(MESSAGE)
    delivery.abort()
    with pytest.raises(PermanentDeliveryError, match="relay denied"):
        deliver(session, [MESSAGE], "relay@example.test")
    deliver(session, [MESSAGE])  # the connection is still good
    assert len(handler.messages) == 1


def test_refusal_at_rcpt_comes_from_begin_with_a_fixed_sender(
    server: SmtpTestServer, handler: Handler
) -> None:
    handler.rcpt_replies = {"gone@example.test": "550 no such user here"}
    sink = SmtpSink(server.address, timeout=5, sender="me@example.test")
    try:
        with pytest.raises(DestinationMissing):
            sink.open_session("1").begin("gone@example.test", None)
    finally:
        sink.close()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 disk full", TemporaryDeliveryError),
        ("550 5.7.1 message rejected as spam", PermanentDeliveryError),
        ("552 5.3.4 message too big", PermanentDeliveryError),
    ],
)
def test_reply_after_data(
    session: DeliverySession, handler: Handler, reply: str, error: type[Exception]
) -> None:
    handler.data_reply = reply
    with pytest.raises(error, match=reply):
        deliver(session, [MESSAGE])
    handler.data_reply = "250 OK"
    deliver(session, [MESSAGE])
    assert len(handler.messages) == 1


def test_abort_during_data_delivers_nothing(session: DeliverySession, handler: Handler) -> None:
    delivery = session.begin(DEST, None)
    delivery.write(RECEIVED)
    delivery.write(MESSAGE)
    delivery.write(b"more body\r\n")
    delivery.abort()
    delivery.abort()  # twice is fine
    deliver(session, [MESSAGE])
    assert [m.data for m in handler.messages] == [RECEIVED + MESSAGE]


def test_closed_port_is_temporary() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = SmtpSink(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(TemporaryDeliveryError, match="cannot connect"):
        sink.open_session("1").begin(DEST, None)


def _scripted(replies: list[bytes]) -> tuple[socket.socket, threading.Thread]:
    """A one-connection server that sends each reply after reading a line (first at once)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            reader = conn.makefile("rb")
            try:
                for n, reply in enumerate(replies):
                    if n:
                        reader.readline()
                    conn.sendall(reply)
                conn.shutdown(socket.SHUT_WR)  # EOF after the last reply
            except OSError:
                pass
            finally:
                reader.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(
    "replies",
    [
        [b"220 hi\r\n", b"this is not SMTP\r\n"],
        [b"220 hi\r\n", b"250-x\r\n251 mixed codes\r\n"],
        [b"220 hi\r\n", b"250 ok\r\n", b"25"],  # MAIL FROM: half a reply, then EOF
        [b"554 no service for you\r\n"],
    ],
)
def test_garbage_or_refusing_server_is_temporary(replies: list[bytes]) -> None:
    listener, thread = _scripted(replies)
    with listener:
        sink = SmtpSink(f"127.0.0.1:{listener.getsockname()[1]}", timeout=2, sender="")
        with pytest.raises(TemporaryDeliveryError):
            sink.open_session("1").begin(DEST, None)
        sink.close()
    thread.join(5)


def test_server_that_never_answers_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, never speaks
        sink = SmtpSink(f"127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
        with pytest.raises(TemporaryDeliveryError, match=r"no answer within 0\.3 s"):
            sink.open_session("1").begin(DEST, None)


def test_starttls_required_but_not_offered_is_refused(server: SmtpTestServer) -> None:
    sink = SmtpSink(server.address, timeout=5, starttls=True)
    with pytest.raises(TemporaryDeliveryError, match="does not offer it"):
        sink.open_session("1").begin(DEST, None)


def test_starttls_verifies_the_certificate_and_auth_works(
    certs: tuple[Path, ssl.SSLContext], handler: Handler
) -> None:
    ca, context = certs
    with SmtpTestServer(handler, tls_context=context, credentials=("relay", "s3cret")) as server:
        untrusted = SmtpSink(server.address, timeout=5, starttls=True, sender="")
        with pytest.raises(TemporaryDeliveryError, match="TLS handshake failed"):
            untrusted.open_session("1").begin(DEST, None)
        wrong = SmtpSink(
            server.address, 5, starttls=True, ca_file=str(ca), username="relay", password="x"
        )
        with pytest.raises(TemporaryDeliveryError, match="rejected the relay credentials"):
            wrong.open_session("1").begin(DEST, None)
        no_auth = SmtpSink(server.address, timeout=5, starttls=True, ca_file=str(ca))
        with pytest.raises(TemporaryDeliveryError, match="530"):  # our setup, not the message
            deliver(no_auth, [MESSAGE])
        no_auth.close()
        good = SmtpSink(
            server.address, 5, starttls=True, ca_file=str(ca), username="relay", password="s3cret"
        )
        deliver(good, [MESSAGE])
        good.close()
    assert [m.data for m in handler.messages] == [RECEIVED + MESSAGE]


def test_settings_errors_are_found_at_construction() -> None:
    with pytest.raises(ConfigError, match="STARTTLS"):
        SmtpSink("localhost:25", 5, username="u", password="p")
    with pytest.raises(ConfigError, match="not a port"):
        SmtpSink("localhost:x", 5)
    with pytest.raises(ConfigError, match="envelope sender"):
        SmtpSink("localhost", 5, sender="a b@c")
    assert str(parse_address("[::1]:2525", 25)) == "::1:2525"
    assert parse_address("/run/lmtp", 24).path == "/run/lmtp"
