"""The POP3 source against the scripted server: exact bytes, TLS rules, faults, deletions."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailhaul.adapters.sources.pop3.source import Pop3Source
from mailhaul.domain.errors import (
    AuthenticationFailed,
    ConfigError,
    ProtocolViolation,
    SourceError,
    TlsFailure,
    TransientSourceError,
    UnsupportedByServer,
)
from mailhaul.domain.messages import MessageRef
from mailhaul.domain.options import Credentials, Security, SourceEndpoint
from support.scripted_pop3 import Fault, Pop3Script, ScriptedPop3Server

PASSWORD = "s3cret-Pa55"
CREDENTIALS = Credentials("alice", PASSWORD)

TRICKY_MESSAGES = [
    b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n.\r\nend\r\n",
    b".first line starts with a dot\r\n\r\nbody\r\n",
    b"Subject: long\r\n\r\n" + b"L" * 100_000 + b"\r\n" + b"M" * 150_000 + b"\r\n",
    b"Subject: binary\r\n\r\n" + bytes(range(256)) * 40 + b"\r\n",
    b"Subject: no newline at the end\r\n\r\nlast line",
    b"",
    b"Subject: bare\r\n\r\nlf\n.\nonly\r\n",
]


@dataclass
class TlsFiles:
    """A throwaway self-signed certificate for localhost and 127.0.0.1."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailhaul test")])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    root = tmp_path_factory.mktemp("tls")
    files = TlsFiles(root / "cert.pem", root / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def script(**fields: object) -> Pop3Script:
    fields.setdefault("password", PASSWORD)
    return Pop3Script(**fields)  # type: ignore[arg-type]  # tests are not type-checked strictly


@pytest.fixture
def log() -> list[str]:
    return []


Serve = Callable[..., tuple[ScriptedPop3Server, Pop3Source]]
"""serve(script, **endpoint fields) → (running server, connected source)."""


def make_source(endpoint: SourceEndpoint, log: list[str]) -> Pop3Source:
    return Pop3Source(endpoint, CREDENTIALS, log.append)


@pytest.fixture
def serve(log: list[str]) -> Iterator[Serve]:
    """serve(script, …) → (server, connected source); both cleaned up after the test."""
    servers: list[ScriptedPop3Server] = []
    sources: list[Pop3Source] = []

    def start(pop3: Pop3Script, **endpoint: object) -> tuple[ScriptedPop3Server, Pop3Source]:
        server = ScriptedPop3Server(pop3).__enter__()
        servers.append(server)
        source = make_source(server.endpoint(**endpoint), log)  # type: ignore[arg-type]
        sources.append(source)
        source.connect()
        return server, source

    yield start
    for source in sources:
        source.abort()
    for server in servers:
        server.stop()
        assert server.errors == []


def fetch_all(source: Pop3Source, refs: tuple[MessageRef, ...]) -> list[bytes]:
    return [b"".join(chunks) for _, chunks in source.fetch(refs)]


def expected(message: bytes) -> bytes:
    # RETR adds a CRLF to a message without one; the exact LIST size lets the client drop it.
    return message


# retrieval ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pipelining", [True, False])
def test_messages_arrive_byte_exact(serve: Serve, log: list[str], pipelining: bool) -> None:
    server, source = serve(script(messages=TRICKY_MESSAGES, pipelining=pipelining))
    listing = source.select("INBOX")
    assert listing.stable_uids
    assert listing.uidvalidity is None
    assert [(m.number, m.uid, m.size) for m in listing.messages] == [
        (i + 1, f"uid-{i + 1}", len(m)) for i, m in enumerate(TRICKY_MESSAGES)
    ]
    assert fetch_all(source, listing.messages) == [expected(m) for m in TRICKY_MESSAGES]
    source.close()
    batches = [c.batch for c in server.commands if c.verb == "RETR"]
    if pipelining:
        assert max(batches) > 1
        assert "PIPELINING" in source.capabilities()
    else:
        assert max(c.batch for c in server.commands) == 1
    assert any("password is sent" in line and "in clear" in line for line in log)


def test_chunks_are_bounded_for_a_large_message(serve: Serve) -> None:
    big = b"Subject: big\r\n\r\n" + (b"z" * 999 + b"\r\n") * 6000 + b".dot\r\n" * 1000
    _, source = serve(script(messages=[big]))
    listing = source.select("INBOX")
    for _, chunks in source.fetch(listing.messages):
        pieces = list(chunks)
        assert max(len(piece) for piece in pieces) <= 256 * 1024
        assert len(pieces) > 1
        assert b"".join(pieces) == big


def test_abandoned_message_is_drained_before_the_next(serve: Serve) -> None:
    messages = [b"A" * 700_000 + b"\r\n", b"second\r\n", b"C" * 300_000 + b"\r\n", b"last\r\n"]
    _, source = serve(script(messages=messages))
    listing = source.select("INBOX")
    got = []
    left: list[Iterator[bytes]] = []
    for ref, chunks in source.fetch(listing.messages):
        got.append((ref.number, next(chunks)))  # take one chunk only
        left.append(chunks)
    assert [n for n, _ in got] == [1, 2, 3, 4]
    assert got[1][1].startswith(b"second")
    assert got[3][1].startswith(b"last")
    with pytest.raises(SourceError, match="abandoned"):
        next(left[0])  # a cut-off message never passes for a whole one
    source.delete(listing.messages[1:2])  # still in step after all that


def test_a_command_mid_message_cuts_it_off_loudly(serve: Serve) -> None:
    server, source = serve(script(messages=[b"A" * 900_000 + b"\r\n", b"b\r\n"]))
    listing = source.select("INBOX")
    _, chunks = next(source.fetch(listing.messages))
    next(chunks)
    source.delete(listing.messages[1:])
    with pytest.raises(SourceError, match="abandoned"):
        next(chunks)
    source.close()
    assert [uid for uid, _ in server.mailbox] == ["uid-1"]


def test_abandoned_fetch_is_drained_before_delete_and_quit(serve: Serve) -> None:
    messages = [b"m%d\r\n" % i * 5000 for i in range(10)]
    server, source = serve(script(messages=messages))
    listing = source.select("INBOX")
    fetching = source.fetch(listing.messages)
    _, chunks = next(fetching)
    assert b"".join(chunks) == messages[0]
    source.delete(listing.messages[:1])  # 9 RETR replies were still owed
    with pytest.raises(SourceError, match="interrupted"):
        next(fetching)
    source.close()
    assert [uid for uid, _ in server.mailbox] == [f"uid-{i + 1}" for i in range(1, 10)]
    assert source.deletions_committed


def test_top_returns_the_header_section(serve: Serve) -> None:
    messages = [b"Subject: a\r\n.X: dot\r\n\r\nbody\r\n", b"Subject: b\r\n\r\n"]
    _, source = serve(script(messages=messages))
    listing = source.select("INBOX")
    headers = dict(source.fetch_headers(listing.messages))
    assert headers[listing.messages[0]] == b"Subject: a\r\n.X: dot\r\n\r\n"
    assert headers[listing.messages[1]] == b"Subject: b\r\n\r\n"


def test_top_not_offered_is_unsupported(serve: Serve) -> None:
    _, source = serve(script(messages=[b"x\r\n"], top=False))
    listing = source.select("INBOX")
    with pytest.raises(UnsupportedByServer):
        source.fetch_headers(listing.messages)


def test_only_inbox_exists(serve: Serve) -> None:
    _, source = serve(script())
    assert source.list_folders() == ["INBOX"]
    with pytest.raises(ConfigError, match="INBOX"):
        source.select("Sent")
    assert source.select("inbox").messages == ()


def test_refs_from_another_listing_are_refused(serve: Serve) -> None:
    server, source = serve(script(messages=[b"a\r\n", b"b\r\n"]))
    source.select("INBOX")
    with pytest.raises(SourceError, match="not in this session's listing"):
        source.delete([MessageRef(uid="uid-2", number=1, size=3)])
    assert "DELE" not in server.verbs()


def test_without_uidl_uids_are_per_session(serve: Serve, log: list[str]) -> None:
    _, source = serve(script(messages=[b"a\r\n", b"b\r\n"], uidl=False))
    listing = source.select("INBOX")
    assert not listing.stable_uids
    first, second = (m.uid for m in listing.messages)
    assert first.startswith("no-uidl:") and first.endswith(":1")
    assert second.endswith(":2") and first[:-1] == second[:-1]
    assert fetch_all(source, listing.messages) == [b"a\r\n", b"b\r\n"]
    assert any("UIDL refused" in line for line in log)


def test_old_server_without_capa_logs_in_with_user_pass(serve: Serve) -> None:
    server, source = serve(script(messages=[b"a\r\n"], capa=False))
    assert source.capabilities() == frozenset()
    assert fetch_all(source, source.select("INBOX").messages) == [b"a\r\n"]
    assert server.verbs()[:3] == ["CAPA", "USER", "PASS"]


# deletions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pipelining", [True, False])
def test_deletions_are_final_only_after_quit(serve: Serve, pipelining: bool) -> None:
    server, source = serve(script(messages=[b"a\r\n", b"b\r\n", b"c\r\n"], pipelining=pipelining))
    listing = source.select("INBOX")
    source.delete(listing.messages[:2])
    assert len(server.mailbox) == 3
    source.close()
    assert [uid for uid, _ in server.mailbox] == ["uid-3"]
    assert server.verbs()[-1] == "QUIT"


def test_abort_sends_no_quit_and_deletes_nothing(serve: Serve) -> None:
    server, source = serve(script(messages=[b"a\r\n", b"b\r\n"]))
    source.delete(source.select("INBOX").messages)
    source.abort()
    server.wait_idle()
    assert "QUIT" not in server.verbs()
    assert len(server.mailbox) == 2
    source.close()  # harmless after abort
    assert "QUIT" not in server.verbs()


def test_failed_dele_is_reported_after_the_batch(serve: Serve) -> None:
    pop3 = script(
        messages=[b"a\r\n", b"b\r\n"],
        faults=[Fault("DELE", "reply", data=b"-ERR no\r\n", arg="1", apply=False)],
    )
    server, source = serve(pop3)
    with pytest.raises(TransientSourceError, match="DELE failed for message 1"):
        source.delete(source.select("INBOX").messages)
    source.close()
    assert [uid for uid, _ in server.mailbox] == ["uid-1"]


def test_lost_quit_reply_after_commit_is_not_an_error(serve: Serve, log: list[str]) -> None:
    pop3 = script(messages=[b"a\r\n", b"b\r\n"], faults=[Fault("QUIT", "drop", after_bytes=0)])
    server, source = serve(pop3)
    source.delete(source.select("INBOX").messages[:1])
    source.close()  # never raises
    assert [uid for uid, _ in server.mailbox] == ["uid-2"]
    assert not source.deletions_committed  # the client cannot know
    assert any("closing" in line for line in log)


def test_quit_dropped_before_commit_keeps_everything(serve: Serve) -> None:
    pop3 = script(messages=[b"a\r\n"], faults=[Fault("QUIT", "drop", apply=False)])
    server, source = serve(pop3)
    source.delete(source.select("INBOX").messages)
    source.close()
    assert len(server.mailbox) == 1


# faults -------------------------------------------------------------------------------------
def test_err_to_retr_names_the_message_and_the_session_stays_usable(serve: Serve) -> None:
    pop3 = script(
        messages=[b"a\r\n", b"b\r\n", b"c\r\n"],
        faults=[Fault("RETR", "reply", data=b"-ERR no such message\r\n", arg="2")],
    )
    server, source = serve(pop3)
    listing = source.select("INBOX")
    got: list[bytes] = []

    def consume() -> None:
        for _, chunks in source.fetch(listing.messages):
            got.append(b"".join(chunks))

    with pytest.raises(TransientSourceError, match="message 2"):
        consume()
    assert got == [b"a\r\n"]
    source.delete(listing.messages[:1])
    source.close()
    assert [uid for uid, _ in server.mailbox] == ["uid-2", "uid-3"]


def test_connection_drop_mid_retr_is_transient(serve: Serve) -> None:
    pop3 = script(
        messages=[b"x" * 50_000 + b"\r\n"], faults=[Fault("RETR", "drop", after_bytes=20_000)]
    )
    server, source = serve(pop3)
    listing = source.select("INBOX")
    with pytest.raises(TransientSourceError, match="closed the connection"):
        fetch_all(source, listing.messages)
    source.close()  # never raises, sends nothing on a dead session
    assert "QUIT" not in server.verbs()


def test_hang_times_out_within_the_endpoint_timeout(serve: Serve) -> None:
    pop3 = script(
        messages=[b"x" * 50_000 + b"\r\n"], faults=[Fault("RETR", "hang", after_bytes=1000)]
    )
    _, source = serve(pop3, timeout=1.0)
    listing = source.select("INBOX")
    started = time.monotonic()
    with pytest.raises(TransientSourceError, match="timed out"):
        fetch_all(source, listing.messages)
    assert time.monotonic() - started < 2.5


def test_hang_at_greeting_times_out(log: list[str]) -> None:
    with ScriptedPop3Server(script(faults=[Fault("GREETING", "hang")])) as server:
        source = make_source(server.endpoint(timeout=0.5), log)
        with pytest.raises(TransientSourceError, match="timed out"):
            source.connect()


@pytest.mark.parametrize(
    ("command", "data"),
    [
        ("LIST", b"HELLO THERE\r\n"),
        ("UIDL", b"+OK\r\n1 ok\r\n2 bad\x01uid\r\n.\r\n"),
        ("LIST", b"+OK\r\n1 12\r\n1 13\r\n.\r\n"),
        ("LIST", b"+OK\r\nx y\r\n.\r\n"),
        ("LIST", b"+OK " + b"x" * 100_000 + b"\r\n"),
        ("UIDL", b"+OK\r\n1 uid-1\r\n9 uid-9\r\n.\r\n"),
        ("UIDL", b"+OK\r\n1 " + b"u" * 71 + b"\r\n.\r\n"),
    ],
)
def test_broken_listings_are_violations(serve: Serve, command: str, data: bytes) -> None:
    pop3 = script(messages=[b"a\r\n"], faults=[Fault(command, "reply", data=data)])
    server, source = serve(pop3)
    with pytest.raises(ProtocolViolation):
        source.select("INBOX")
    source.close()
    assert "QUIT" not in server.verbs()


def test_garbage_instead_of_retr_reply_is_a_violation(serve: Serve) -> None:
    pop3 = script(messages=[b"a\r\n"], faults=[Fault("RETR", "reply", data=b"\x00\xffwhat\r\n")])
    _, source = serve(pop3)
    with pytest.raises(ProtocolViolation, match="where \\+OK or -ERR was due"):
        fetch_all(source, source.select("INBOX").messages)


def test_eof_inside_an_endless_line_is_transient(serve: Serve) -> None:
    pop3 = script(
        messages=[b"a\r\n"], faults=[Fault("RETR", "drop", data=b"+OK\r\n" + b"q" * 3_000_000)]
    )
    _, source = serve(pop3)
    listing = source.select("INBOX")
    with pytest.raises(TransientSourceError):
        fetch_all(source, listing.messages)


# login --------------------------------------------------------------------------------------
def test_auth_failure_has_the_server_text_and_never_the_password(log: list[str]) -> None:
    pop3 = script(login_error=f"[AUTH] Invalid login: password {PASSWORD} is wrong")
    with ScriptedPop3Server(pop3) as server:
        source = make_source(server.endpoint(), log)
        with pytest.raises(AuthenticationFailed) as caught:
            source.connect()
    text = str(caught.value)
    assert "[AUTH] Invalid login" in text
    assert PASSWORD not in text
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert all(PASSWORD not in line for line in log)
    assert PASSWORD not in repr(source)


def test_password_that_would_break_the_command_line_is_refused(log: list[str]) -> None:
    with ScriptedPop3Server(script()) as server:
        source = Pop3Source(server.endpoint(), Credentials("alice", "pw\r\nDELE 1"), log.append)
        with pytest.raises(ConfigError, match="line break") as caught:
            source.connect()
        assert "DELE" not in str(caught.value)
        assert server.verbs() == ["CAPA"]


def test_wrong_password_is_authentication_failed(log: list[str]) -> None:
    with ScriptedPop3Server(script(password="other")) as server:
        source = make_source(server.endpoint(), log)
        with pytest.raises(AuthenticationFailed, match="authentication failed"):
            source.connect()


@pytest.mark.parametrize("code", ["[IN-USE] mailbox locked", "[SYS/TEMP] try later"])
def test_busy_mailbox_is_transient(log: list[str], code: str) -> None:
    with ScriptedPop3Server(script(login_error=code)) as server:
        source = make_source(server.endpoint(), log)
        with pytest.raises(TransientSourceError, match=code.split("]")[0][1:]) as caught:
            source.connect()
        assert not isinstance(caught.value, AuthenticationFailed)


@pytest.mark.parametrize("long_name", [False, True])
def test_sasl_plain_when_user_is_not_offered(log: list[str], long_name: bool) -> None:
    # A long username pushes AUTH PLAIN over 255 octets: the response then follows a "+".
    username = "alice" + ("x" * 300 if long_name else "")
    pop3 = script(username=username, user=False, sasl_plain=True, messages=[b"a\r\n"])
    with ScriptedPop3Server(pop3) as server:
        source = Pop3Source(server.endpoint(), Credentials(username, PASSWORD), log.append)
        source.connect()
        assert fetch_all(source, source.select("INBOX").messages) == [b"a\r\n"]
        source.close()
    assert "USER" not in server.verbs()
    assert server.verbs()[1] == "AUTH"
    assert all(PASSWORD not in line for line in server.lines())  # base64 only
    assert server.errors == []


def test_login_stops_at_the_refused_pass(log: list[str]) -> None:
    with ScriptedPop3Server(script(login_error="[AUTH] no")) as server:
        source = make_source(server.endpoint(), log)
        with pytest.raises(AuthenticationFailed):
            source.connect()
        assert server.verbs() == ["CAPA", "USER", "PASS"]


# TLS ----------------------------------------------------------------------------------------
def test_starttls_not_offered_is_refused_before_any_credentials(
    log: list[str], tls_files: TlsFiles
) -> None:
    with ScriptedPop3Server(script(stls=False), tls_files.server_context()) as server:
        source = make_source(server.endpoint(Security.STARTTLS, ca_file=str(tls_files.cert)), log)
        with pytest.raises(TlsFailure, match="does not offer STLS"):
            source.connect()
        assert server.verbs() == ["CAPA"]


def test_starttls_refused_by_the_server_is_a_tls_failure(
    log: list[str], tls_files: TlsFiles
) -> None:
    pop3 = script(stls=True, faults=[Fault("STLS", "reply", data=b"-ERR not now\r\n", apply=False)])
    with ScriptedPop3Server(pop3, tls_files.server_context()) as server:
        source = make_source(server.endpoint(Security.STARTTLS, ca_file=str(tls_files.cert)), log)
        with pytest.raises(TlsFailure, match="refused STLS"):
            source.connect()
        assert "PASS" not in server.verbs() and "USER" not in server.verbs()


def test_starttls_injection_is_a_violation(log: list[str], tls_files: TlsFiles) -> None:
    pop3 = script(stls=True, faults=[Fault("STLS", "reply", data=b"+OK go\r\n+OK injected\r\n")])
    with ScriptedPop3Server(pop3, tls_files.server_context()) as server:
        source = make_source(server.endpoint(Security.STARTTLS, ca_file=str(tls_files.cert)), log)
        with pytest.raises(ProtocolViolation, match="before the TLS handshake"):
            source.connect()
        assert "PASS" not in server.verbs()


def test_starttls_upgrades_before_credentials(log: list[str], tls_files: TlsFiles) -> None:
    pop3 = script(stls=True, messages=[b"secret mail\r\n"])
    with ScriptedPop3Server(pop3, tls_files.server_context()) as server:
        source = make_source(server.endpoint(Security.STARTTLS, ca_file=str(tls_files.cert)), log)
        source.connect()
        assert fetch_all(source, source.select("INBOX").messages) == [b"secret mail\r\n"]
        source.close()
    plain = [c.verb for c in server.commands if not c.tls]
    assert plain == ["CAPA", "STLS"]
    assert {"USER", "PASS", "RETR", "QUIT"} <= {c.verb for c in server.commands if c.tls}
    assert "STLS" not in source.capabilities()


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_unknown_certificate_is_rejected(
    log: list[str], tls_files: TlsFiles, security: Security
) -> None:
    implicit = security is Security.SSL
    with ScriptedPop3Server(
        script(stls=True), tls_files.server_context(), implicit_tls=implicit
    ) as server:
        source = make_source(server.endpoint(security), log)
        with pytest.raises(TlsFailure, match="certificate"):
            source.connect()
        assert "PASS" not in server.verbs()


@pytest.mark.parametrize(
    ("host", "verify", "with_ca"),
    [("127.0.0.1", True, True), ("localhost", True, True), ("127.0.0.1", False, False)],
)
def test_implicit_tls_is_accepted_with_ca_file_or_without_verification(
    log: list[str], tls_files: TlsFiles, host: str, verify: bool, with_ca: bool
) -> None:
    pop3 = script(messages=[b"over tls\r\n"])
    with ScriptedPop3Server(pop3, tls_files.server_context(), implicit_tls=True) as server:
        ca = str(tls_files.cert) if with_ca else None
        endpoint = server.endpoint(Security.SSL, host=host, verify_cert=verify, ca_file=ca)
        source = make_source(endpoint, log)
        source.connect()
        assert fetch_all(source, source.select("INBOX").messages) == [b"over tls\r\n"]
        source.close()
        assert all(c.tls for c in server.commands)
