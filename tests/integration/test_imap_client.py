"""The IMAP source against the scripted IMAP server on loopback (faults included)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailhaul.adapters.sources.imap.source import ImapSource
from mailhaul.domain.errors import (
    AuthenticationFailed,
    ConfigError,
    MessageMismatch,
    ProtocolViolation,
    TlsFailure,
    TransientSourceError,
    UnsupportedByServer,
)
from mailhaul.domain.messages import FolderListing, FolderState, MessageRef
from mailhaul.domain.options import Credentials, Protocol, Security, SourceEndpoint
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer

PASSWORD = "s3cr3t-Pa55"


def mailbox(*bodies: bytes, uidvalidity: int = 77, seen: frozenset[int] = frozenset()) -> Mailbox:
    """A folder whose messages get UIDs 10, 20, 30, ... (so UIDs differ from numbers)."""
    messages = [
        Message(10 * (i + 1), body, {"\\Seen"} if 10 * (i + 1) in seen else set())
        for i, body in enumerate(bodies)
    ]
    return Mailbox(uidvalidity, messages)


def numbered(count: int) -> list[bytes]:
    return [b"Subject: message %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(count)]


class Harness:
    """Starts scripted servers and connects sources; cleans both up."""

    def __init__(self) -> None:
        self.servers: list[ScriptedImapServer] = []
        self.sources: list[ImapSource] = []
        self.log: list[str] = []

    def server(
        self, script: ImapScript, *, tls: ssl.SSLContext | None = None, implicit: bool = False
    ) -> ScriptedImapServer:
        server = ScriptedImapServer(script, tls=tls, implicit_tls=implicit)
        server.start()
        self.servers.append(server)
        return server

    def source(
        self,
        server: ScriptedImapServer,
        *,
        password: str = PASSWORD,
        username: str = "user",
        connect: bool = True,
        security: Security = Security.NONE,
        host: str = "127.0.0.1",
        ca_file: str | None = None,
        verify_cert: bool = True,
        timeout: float = 1.0,
    ) -> ImapSource:
        endpoint = SourceEndpoint(
            Protocol.IMAP,
            host,
            server.port,
            security=security,
            verify_cert=verify_cert,
            ca_file=ca_file,
            timeout=timeout,
        )
        source = ImapSource(endpoint, Credentials(username, password), self.log.append)
        self.sources.append(source)
        if connect:
            source.connect()
        return source

    def close(self) -> None:
        for source in self.sources:
            source.abort()
        for server in self.servers:
            server.stop()
            assert server.errors == []
            assert server.ambiguities == []


@pytest.fixture
def harness() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def script(*bodies: bytes, **options: object) -> ImapScript:
    return ImapScript(password=PASSWORD, folders={"INBOX": mailbox(*bodies)}, **options)  # type: ignore[arg-type]


def fetch_all(source: ImapSource, refs: tuple[MessageRef, ...]) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    for ref, chunks in source.fetch(refs):
        assert ref.uid not in got
        got[ref.uid] = b"".join(chunks)
    return got


# --- retrieval ---------------------------------------------------------------------------

ODD_MESSAGES = [
    b"Subject: long\r\n\r\n" + b"x" * 100_000 + b"\r\nend\r\n",
    bytes(range(256)) * 40,
    b"Subject: no newline at the end",
    b"Subject: dots\r\n\r\n.\r\n..\r\n.\r\n",
    b"Subject: bare LF\n\nline\n)\n* 1 FETCH (UID 1)\n",
    b"",
]


def test_listing_and_byte_exact_retrieval(harness: Harness) -> None:
    server = harness.server(
        ImapScript(
            password=PASSWORD, folders={"INBOX": mailbox(*ODD_MESSAGES, seen=frozenset({20}))}
        )
    )
    source = harness.source(server)
    listing = source.select("INBOX")
    assert listing.uidvalidity == 77
    assert [(m.uid, m.number, m.size, m.seen) for m in listing.messages] == [
        (str(10 * (i + 1)), 10 * (i + 1), len(body), 10 * (i + 1) == 20)
        for i, body in enumerate(ODD_MESSAGES)
    ]
    got = fetch_all(source, listing.messages)
    assert got == {str(10 * (i + 1)): body for i, body in enumerate(ODD_MESSAGES)}
    assert all(not c.upper().startswith("UID STORE") for c in server.commands)  # PEEK only
    source.close()
    assert server.command_names()[-1] == "LOGOUT"


def test_chunks_are_at_most_256_kib(harness: Harness) -> None:
    server = harness.server(script(b"y" * (3 * 1024 * 1024 + 5)))
    source = harness.source(server)
    ref, chunks = next(source.fetch(source.select("INBOX").messages))
    sizes = [len(chunk) for chunk in chunks]
    assert max(sizes) <= 256 * 1024
    assert sum(sizes) == ref.size


def test_listing_ten_thousand_messages(harness: Harness) -> None:
    messages = [
        Message(uid, b"m%d" % uid, {"\\Seen"} if uid % 7 else set()) for uid in range(1, 10_001)
    ]
    server = harness.server(ImapScript(password=PASSWORD, folders={"INBOX": Mailbox(9, messages)}))
    # what is tested is the listing, not the pace: a loaded machine may pause the scripted
    # server (a thread of this process) for more than the suite's usual 1 s
    listing = harness.source(server, timeout=30.0).select("INBOX")
    assert len(listing.messages) == 10_000
    assert listing.messages[-1] == MessageRef("10000", 10_000, 6, True)
    assert sum(not m.seen for m in listing.messages) == 10_000 // 7


def test_a_big_folder_listed_slowly_is_not_a_stalled_server(harness: Harness) -> None:
    # 3000 listing lines at ~1 ms each outlast the command's 2 s (2 x the 1 s timeout):
    # every 1000 listed messages are progress, so the listing completes
    messages = [Message(uid, b"m%d" % uid, {"\\Seen"}) for uid in range(1, 3001)]
    server = harness.server(
        ImapScript(password=PASSWORD, folders={"INBOX": Mailbox(9, messages)}, listing_pace=0.0009)
    )
    started = time.monotonic()
    listing = harness.source(server).select("INBOX")
    assert time.monotonic() - started > 2.0  # the control: it did outlast one command's time
    assert [m.number for m in listing.messages] == list(range(1, 3001))


def test_empty_folder_lists_nothing_without_fetching(harness: Harness) -> None:
    server = harness.server(script())
    listing = harness.source(server).select("INBOX")
    assert listing == FolderListing("INBOX", 77, (), state=FolderState(77, 1, 0, 0))
    assert not any(c.startswith("UID FETCH") for c in server.commands)


ESEARCH_REPLIES = {
    "UID SEARCH RETURN (ALL) ALL": b'* ESEARCH (TAG "$TAG") UID ALL 10:10,20,30\r\n'
    b"$TAG OK Search done\r\n",
    "UID SEARCH RETURN (ALL) UNSEEN": b'* ESEARCH (TAG "$TAG") UID ALL 30\r\n'
    b"$TAG OK Search done\r\n",
}


def test_known_folder_is_listed_by_esearch_ranges_in_one_round_trip(harness: Harness) -> None:
    bodies = [b"Subject: a\r\n\r\n1\r\n", b"Subject: b\r\n\r\n2\r\n", b"Subject: new\r\n\r\n3"]
    server = harness.server(
        script(*bodies, extra_caps=("ESEARCH",), replies=ESEARCH_REPLIES, reorder=False)
    )
    server.script.folders["INBOX"].messages[0].flags.add("\\Seen")
    server.script.folders["INBOX"].messages[1].flags.add("\\Seen")
    listing = harness.source(server).select("INBOX", known={"10", "20"})
    assert [(r.uid, r.seen) for r in listing.messages] == [
        ("10", True),
        ("20", True),
        ("30", False),
    ]
    assert listing.messages[2].size == len(bodies[2])  # details fetched for the new one only
    searches = [c for c in server.commands if c.startswith("UID SEARCH")]
    assert searches == list(ESEARCH_REPLIES)
    assert [c for c in server.commands if c.startswith("UID FETCH")] == [
        "UID FETCH 30 (UID FLAGS RFC822.SIZE)"
    ]


@pytest.mark.parametrize(
    "answer",
    [
        b"1:4294967295",  # four billion UIDs: refused before anything is expanded
        b"0:5",
        b"5:",
        b"1,,2",
    ],
)
def test_hostile_esearch_sets_are_protocol_violations(harness: Harness, answer: bytes) -> None:
    replies = dict(ESEARCH_REPLIES)
    replies["UID SEARCH RETURN (ALL) ALL"] = (
        b'* ESEARCH (TAG "$TAG") UID ALL ' + answer + b"\r\n$TAG OK Search done\r\n"
    )
    server = harness.server(
        script(b"Subject: a\r\n\r\n1", extra_caps=("ESEARCH",), replies=replies)
    )
    with pytest.raises(ProtocolViolation):
        harness.source(server).select("INBOX", known={"10"})


def test_pipelined_fetch_of_many_messages_in_order(harness: Harness) -> None:
    bodies = numbered(300)
    server = harness.server(script(*bodies))
    source = harness.source(server)
    listing = source.select("INBOX")
    order = [ref.uid for ref, _ in ((r, b"".join(c)) for r, c in source.fetch(listing.messages))]
    assert order == [m.uid for m in listing.messages]
    fetches = [c for c in server.commands if c.endswith("BODY.PEEK[]")]
    assert len(fetches) == 300


@pytest.mark.parametrize(
    "options",
    [
        {"uid_last": True},
        {"reorder": True},
        {"uid_last": True, "reorder": True},
    ],
    ids=lambda options: "+".join(options),
)
def test_out_of_order_answers_are_mapped_by_uid(harness: Harness, options: dict[str, bool]) -> None:
    bodies = numbered(120)
    server = harness.server(script(*bodies, **options))
    source = harness.source(server)
    got = fetch_all(source, source.select("INBOX").messages)
    assert got == {str(10 * (i + 1)): body for i, body in enumerate(bodies)}
    if options.get("reorder"):
        assert max(server.fetch_batches) > 1  # some answers really came reversed


@pytest.mark.parametrize("reorder", [False, True])
def test_a_body_without_its_uid_item_is_never_taken_for_a_message(
    harness: Harness, reorder: bool
) -> None:
    # RFC 3501 §6.4.8: every FETCH response to a UID command carries the UID. A sequence
    # number alone can be wrong, so a body without one is not any message's; each such
    # message fails at its end (the session stays in step) and the next one follows.
    bodies = numbered(4)
    server = harness.server(script(*bodies, omit_uid=True, reorder=reorder))
    source = harness.source(server)
    failed = []
    for ref, chunks in source.fetch(source.select("INBOX").messages):
        with pytest.raises(MessageMismatch, match="without saying its UID"):
            b"".join(chunks)
        failed.append(ref.uid)
    assert sorted(failed, key=int) == ["10", "20", "30", "40"]


def test_unconfirmed_guess_fails_before_the_end(harness: Harness) -> None:
    # An EXPUNGE for a number the folder never had: the client stops trusting numbers,
    # and a body without UID can then only be guessed, which must not pass as complete.
    inject = {"UID FETCH 10 BODY": b"* 99 EXPUNGE\r\n"}
    server = harness.server(script(*numbered(2), omit_uid=True, inject=inject))
    source = harness.source(server)
    ref, chunks = next(source.fetch(source.select("INBOX").messages))
    assert ref.uid == "10"
    with pytest.raises(ProtocolViolation, match="without saying its UID"):
        b"".join(chunks)


def test_body_whose_trailing_uid_disagrees_fails_before_the_end(harness: Harness) -> None:
    replies = {"UID FETCH 20 BODY": b"* 2 FETCH (BODY[] {3}\r\nabc UID 30)\r\n$TAG OK done\r\n"}
    server = harness.server(script(*numbered(3), replies=replies))
    source = harness.source(server)
    messages = source.fetch(source.select("INBOX").messages)
    ref, chunks = next(messages)
    assert b"".join(chunks).startswith(b"Subject: message 0")
    ref, chunks = next(messages)
    assert ref.uid == "20"
    assert next(chunks) == b"abc"
    with pytest.raises(ProtocolViolation, match="UID 30 where UID 20 was expected"):
        next(chunks)


def test_interleaved_untagged_responses_and_an_expunge_mid_fetch(harness: Harness) -> None:
    bodies = numbered(6)
    server = harness.server(
        script(
            *bodies,
            inject_after_body=b"* 9 EXISTS\r\n* 1 FETCH (FLAGS (\\Seen))\r\n* 2 RECENT\r\n",
            inject={"UID FETCH 10 BODY": b"* OK [ALERT] still here\r\n"},
            expunge_at_fetch={20, 50},
        )
    )
    source = harness.source(server)
    got = fetch_all(source, source.select("INBOX").messages)
    assert got == {str(10 * (i + 1)): b for i, b in enumerate(bodies) if i not in (1, 4)}
    assert any("UID 20" in line and "no longer on the server" in line for line in harness.log)
    assert any("UID 50" in line for line in harness.log)


def test_vanished_refused_nil_and_quoted_bodies(harness: Harness) -> None:
    bodies = [*numbered(4), b'Subject: one "quoted" \\ line']
    server = harness.server(
        script(*bodies, vanish={20}, refuse={30}, body_nil={40}, body_quoted={50})
    )
    source = harness.source(server)
    got = fetch_all(source, source.select("INBOX").messages)
    assert got == {"10": bodies[0], "50": bodies[4]}
    skipped = " ".join(harness.log)
    assert "UID 20" in skipped and "UID 30" in skipped and "UID 40" in skipped


def test_abandoned_chunk_iterator_is_drained(harness: Harness) -> None:
    bodies = [b"a" * 2_000_000, b"second", b"b" * 700_000, b"fourth"]
    server = harness.server(script(*bodies))
    source = harness.source(server)
    got = {}
    for ref, chunks in source.fetch(source.select("INBOX").messages):
        if ref.size > 1000:
            next(chunks)  # read one chunk, then give up on this message
            continue
        got[ref.uid] = b"".join(chunks)
    assert got == {"20": b"second", "40": b"fourth"}
    source.mark_seen(())  # the session is still in step
    source.close()
    assert server.command_names()[-1] == "LOGOUT"


def test_another_command_cuts_an_unfinished_fetch_short(harness: Harness) -> None:
    server = harness.server(script(*numbered(80)))
    source = harness.source(server)
    listing = source.select("INBOX")
    messages = source.fetch(listing.messages)
    _, chunks = next(messages)
    assert source.list_folders() == ["INBOX"]
    with pytest.raises(TransientSourceError):
        b"".join(chunks)  # never a truncated message
    assert list(messages) == []
    assert any("cut short" in line for line in harness.log)
    source.close()
    assert server.command_names()[-1] == "LOGOUT"


def test_per_message_delete_during_a_fetch_is_pipelined(harness: Harness) -> None:
    bodies = numbered(120)
    server = harness.server(script(*bodies))
    source = harness.source(server)
    got = {}
    for ref, chunks in source.fetch(source.select("INBOX").messages):
        got[ref.uid] = b"".join(chunks)
        source.delete([ref])  # as soon as the message is safe locally
    assert got == {str(10 * (i + 1)): body for i, body in enumerate(bodies)}
    assert server.script.folders["INBOX"].messages == []
    assert server.commands.index("UID EXPUNGE 10") < server.commands.index(
        "UID FETCH 1200 BODY.PEEK[]"
    )
    source.close()
    assert server.command_names()[-1] == "LOGOUT"


def test_close_confirms_a_delete_sent_into_an_unfinished_fetch(harness: Harness) -> None:
    server = harness.server(script(*numbered(80)))
    source = harness.source(server)
    messages = source.fetch(source.select("INBOX").messages)
    ref, chunks = next(messages)
    b"".join(chunks)
    source.delete([ref])
    source.close()
    assert server.command_names()[-1] == "LOGOUT"
    assert [m.uid for m in server.script.folders["INBOX"].messages][:2] == [20, 30]


def test_close_during_an_unfinished_fetch_just_drops_the_socket(harness: Harness) -> None:
    server = harness.server(script(*numbered(80)))
    source = harness.source(server)
    messages = source.fetch(source.select("INBOX").messages)
    next(messages)
    source.close()
    assert "LOGOUT" not in server.command_names()


def test_refused_flag_change_during_a_fetch_is_logged(harness: Harness) -> None:
    server = harness.server(
        script(*numbered(5), replies={"UID STORE": b"$TAG NO [READ-ONLY] no\r\n"})
    )
    source = harness.source(server)
    count = 0
    for ref, chunks in source.fetch(source.select("INBOX").messages):
        b"".join(chunks)
        source.mark_seen([ref])
        count += 1
    assert count == 5
    assert sum("server refused marking messages" in line for line in harness.log) == 5


def test_huge_flag_change_during_a_fetch_waits_for_it(harness: Harness) -> None:
    server = harness.server(script(*numbered(80)))
    source = harness.source(server)
    messages = source.fetch(source.select("INBOX").messages)
    _, chunks = next(messages)
    b"".join(chunks)
    source.mark_seen([MessageRef(str(uid), uid, 1) for uid in range(2, 40_000, 2)])
    assert list(messages) == []  # the fetch was drained so the flags could be confirmed
    assert any("cut short" in line for line in harness.log)


def test_unasked_body_is_skipped(harness: Harness) -> None:
    replies = {
        "UID FETCH 10 BODY": b"* 3 FETCH (UID 30 BODY[] {4}\r\nnope)\r\n"
        b"* 1 FETCH (UID 10 BODY[] {3}\r\nyes)\r\n$TAG OK done\r\n"
    }
    server = harness.server(script(*numbered(3), replies=replies))
    source = harness.source(server)
    refs = source.select("INBOX").messages[:1]
    assert fetch_all(source, refs) == {"10": b"yes"}
    assert any("unasked" in line for line in harness.log)


def test_fetch_headers(harness: Harness) -> None:
    bodies = [b"Subject: a\r\nFrom: b\r\n\r\nbody\r\n", b"Subject: lf\n\nbody\n", b"no header"]
    server = harness.server(script(*bodies))
    source = harness.source(server)
    listing = source.select("INBOX")
    headers = dict((ref.uid, header) for ref, header in source.fetch_headers(listing.messages))
    assert headers == {
        "10": b"Subject: a\r\nFrom: b\r\n\r\n",
        "20": b"Subject: lf\n\n",
        "30": b"no header",
    }
    assert "UID FETCH 10,20,30 (UID RFC822.SIZE BODY.PEEK[HEADER])" in server.commands


# --- flags and deletion ------------------------------------------------------------------


def test_mark_seen_compresses_uids(harness: Harness) -> None:
    messages = [Message(uid, b"x") for uid in range(1, 7)]
    server = harness.server(ImapScript(password=PASSWORD, folders={"INBOX": Mailbox(1, messages)}))
    source = harness.source(server)
    refs = source.select("INBOX").messages
    source.mark_seen([refs[0], refs[2], refs[3], refs[5]])
    assert "UID STORE 1,3:4,6 +FLAGS.SILENT (\\Seen)" in server.commands
    flags = [m.flags for m in server.script.folders["INBOX"].messages]
    assert flags == [{"\\Seen"}, set(), {"\\Seen"}, {"\\Seen"}, set(), {"\\Seen"}]


def test_huge_uid_sets_are_split_into_short_commands(harness: Harness) -> None:
    server = harness.server(script(*numbered(1)))
    source = harness.source(server)
    source.select("INBOX")
    refs = [MessageRef(str(uid), uid, 1) for uid in range(2, 40_000, 2)]
    source.mark_seen(refs)
    stores = [c for c in server.commands if c.startswith("UID STORE")]
    assert len(stores) > 3
    assert all(len(c) < 8000 for c in stores)
    covered: set[int] = set()
    for command in stores:
        covered |= {int(part) for part in command.split(" ")[2].split(",")}
    assert covered == {ref.number for ref in refs}


def test_delete_with_uidplus_expunges_only_ours(harness: Harness) -> None:
    server = harness.server(script(*numbered(4)))
    source = harness.source(server)
    refs = source.select("INBOX").messages
    server.script.folders["INBOX"].messages[3].flags.add("\\Deleted")  # another client's
    source.delete(refs[:2])
    assert server.commands[-2:] == [
        "UID STORE 10,20 +FLAGS.SILENT (\\Deleted)",
        "UID EXPUNGE 10,20",
    ]
    assert [m.uid for m in server.script.folders["INBOX"].messages] == [30, 40]


def test_delete_without_uidplus_uses_expunge_and_says_so(harness: Harness) -> None:
    server = harness.server(script(*numbered(3), uidplus=False))
    source = harness.source(server)
    refs = source.select("INBOX").messages
    source.delete([refs[1]])
    assert server.commands[-2:] == ["UID STORE 20 +FLAGS.SILENT (\\Deleted)", "EXPUNGE"]
    assert any("UIDPLUS" in line for line in harness.log)
    assert [m.uid for m in server.script.folders["INBOX"].messages] == [10, 30]


# --- folders -----------------------------------------------------------------------------


def test_folders_are_listed_decoded_and_selected_encoded(harness: Harness) -> None:
    folders = {"INBOX": mailbox(), "Entw&APw-rfe": mailbox(b"draft", uidvalidity=5)}
    server = harness.server(ImapScript(password=PASSWORD, folders=folders))
    source = harness.source(server)
    assert source.list_folders() == ["INBOX", "Entwürfe"]
    listing = source.select("Entwürfe")
    assert (listing.folder, listing.uidvalidity, len(listing.messages)) == ("Entwürfe", 5, 1)
    assert 'SELECT "Entw&APw-rfe"' in server.commands


def test_missing_folder_is_a_config_error(harness: Harness) -> None:
    source = harness.source(harness.server(script()))
    with pytest.raises(ConfigError, match="'Archive' does not exist on the server"):
        source.select("Archive")
    assert source.select("INBOX").uidvalidity == 77  # the session goes on


def test_missing_uidvalidity_is_a_protocol_violation(harness: Harness) -> None:
    reply = b"* 0 EXISTS\r\n$TAG OK [READ-WRITE] done\r\n"
    source = harness.source(harness.server(script(replies={"SELECT": reply})))
    with pytest.raises(ProtocolViolation, match="no UIDVALIDITY"):
        source.select("INBOX")


# --- security ----------------------------------------------------------------------------


def test_starttls_not_offered_is_refused_before_login(harness: Harness) -> None:
    server = harness.server(script())
    with pytest.raises(TlsFailure, match="does not offer STARTTLS"):
        harness.source(server, security=Security.STARTTLS)
    assert b"LOGIN" not in bytes(server.received)
    assert PASSWORD.encode() not in bytes(server.received)


def test_starttls_refused_by_the_server(harness: Harness, tls_files: TlsFiles) -> None:
    server = harness.server(
        script(starttls=True, replies={"STARTTLS": b"$TAG NO not today\r\n"}), tls=tls_files.server
    )
    with pytest.raises(TlsFailure, match="refused STARTTLS: not today"):
        harness.source(server, security=Security.STARTTLS, ca_file=tls_files.ca)
    assert b"LOGIN" not in bytes(server.received)


def test_starttls_injection_is_refused(harness: Harness, tls_files: TlsFiles) -> None:
    reply = b"$TAG OK begin\r\n* OK [CAPABILITY IMAP4rev1] injected\r\n"
    server = harness.server(
        script(starttls=True, replies={"STARTTLS": reply}), tls=tls_files.server
    )
    with pytest.raises(ProtocolViolation, match="before the TLS handshake"):
        harness.source(server, security=Security.STARTTLS, ca_file=tls_files.ca)
    assert b"LOGIN" not in bytes(server.received)


def test_starttls_upgrades_and_asks_capabilities_again(
    harness: Harness, tls_files: TlsFiles
) -> None:
    server = harness.server(script(*numbered(2), starttls=True), tls=tls_files.server)
    source = harness.source(server, security=Security.STARTTLS, ca_file=tls_files.ca)
    assert server.command_names()[:3] == ["STARTTLS", "CAPABILITY", "LOGIN"]
    assert "STARTTLS" not in source.capabilities()
    assert len(fetch_all(source, source.select("INBOX").messages)) == 2


def test_preauth_on_plain_text_with_starttls_is_refused(harness: Harness) -> None:
    server = harness.server(script(greeting=b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"))
    with pytest.raises(TlsFailure, match="pre-authenticated"):
        harness.source(server, security=Security.STARTTLS)


def test_plain_text_connection_logs_the_clear_password(harness: Harness) -> None:
    harness.source(harness.server(script()))
    assert any("password is sent in clear" in line for line in harness.log)


def test_implicit_tls_needs_a_trusted_certificate(harness: Harness, tls_files: TlsFiles) -> None:
    server = harness.server(script(*numbered(1)), tls=tls_files.server, implicit=True)
    with pytest.raises(TlsFailure, match="certificate"):
        harness.source(server, security=Security.SSL)
    for ca_file, verify in ((tls_files.ca, True), (None, False)):
        source = harness.source(
            server, security=Security.SSL, host="localhost", ca_file=ca_file, verify_cert=verify
        )
        assert len(fetch_all(source, source.select("INBOX").messages)) == 1
        source.close()


# --- login -------------------------------------------------------------------------------


def test_rejected_login_reports_the_server_text_but_never_the_password(harness: Harness) -> None:
    failure = b"NO [AUTHENTICATIONFAILED] Invalid credentials for wrong-" + PASSWORD.encode()
    server = harness.server(ImapScript(password="other", login_failure=failure))
    source = harness.source(server, connect=False)
    with pytest.raises(AuthenticationFailed) as caught:
        source.connect()
    message = str(caught.value)
    assert "[AUTHENTICATIONFAILED] Invalid credentials" in message
    assert PASSWORD not in message
    assert PASSWORD not in repr(source)
    assert all(PASSWORD not in line for line in harness.log)


def test_password_quoted_back_in_garbage_is_redacted(harness: Harness) -> None:
    reply = b"you said " + PASSWORD.encode() + b" \x01\r\n"
    server = harness.server(script(replies={"SELECT": reply}))
    source = harness.source(server)
    with pytest.raises(ProtocolViolation) as caught:
        source.select("INBOX")
    assert "you said ***" in str(caught.value)
    with pytest.raises(TransientSourceError) as again:
        source.select("INBOX")
    assert PASSWORD not in str(again.value)


def test_unavailable_login_is_transient(harness: Harness) -> None:
    server = harness.server(
        ImapScript(password="x", login_failure=b"NO [UNAVAILABLE] Backend down")
    )
    with pytest.raises(TransientSourceError, match="Backend down"):
        harness.source(server)


@pytest.mark.parametrize("literal_plus", [False, True])
@pytest.mark.parametrize("password", ['quote"and\\slash', "pässwörd", "line\nbreak"])
def test_passwords_that_need_quoting_or_literals(
    harness: Harness, password: str, literal_plus: bool
) -> None:
    server = harness.server(
        ImapScript(username="üser", password=password, literal_plus=literal_plus)
    )
    harness.source(server, username="üser", password=password)
    login = bytes(server.received)
    secret = password.encode()
    if password.startswith("quote"):
        assert b' "quote\\"and\\\\slash"\r\n' in login
    elif literal_plus:
        assert b" {%d+}\r\n%s\r\n" % (len(secret), secret) in login
    else:
        assert b" {%d}\r\n%s\r\n" % (len(secret), secret) in login


@pytest.mark.parametrize("sasl_ir", [False, True])
def test_logindisabled_uses_authenticate_plain(harness: Harness, sasl_ir: bool) -> None:
    server = harness.server(script(logindisabled=True, auth_plain=True, sasl_ir=sasl_ir))
    harness.source(server)
    assert "LOGIN" not in server.command_names()
    assert "AUTHENTICATE" in server.command_names()


def test_logindisabled_without_auth_plain_is_unsupported(harness: Harness) -> None:
    with pytest.raises(UnsupportedByServer, match="LOGIN"):
        harness.source(harness.server(script(logindisabled=True)))


def test_capabilities_after_login_are_asked_when_not_sent(harness: Harness) -> None:
    server = harness.server(script(caps_in_greeting=False, caps_after_login=False))
    source = harness.source(server)
    assert server.command_names() == ["CAPABILITY", "LOGIN", "CAPABILITY"]
    assert "UIDPLUS" in source.capabilities()


# --- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "error"),
    [
        (b"* BYE Too many connections\r\n", TransientSourceError),
        (b"SSH-2.0-OpenSSH_9.2\r\n", ProtocolViolation),
        (b"M1 OK hello\r\n", ProtocolViolation),
    ],
)
def test_bad_greetings(harness: Harness, greeting: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        harness.source(harness.server(script(greeting=greeting)))


def test_connection_drop_mid_literal_is_transient(harness: Harness) -> None:
    server = harness.server(script(b"z" * 500_000, drop_after_bytes=200_000))
    source = harness.source(server)
    _, chunks = next(source.fetch(source.select("INBOX").messages))
    with pytest.raises(TransientSourceError, match="closed the connection"):
        b"".join(chunks)
    source.close()  # never raises


def test_drop_at_a_command_is_transient(harness: Harness) -> None:
    with pytest.raises(TransientSourceError):
        harness.source(harness.server(script(drop_at="LOGIN")))


def test_hang_times_out_quickly(harness: Harness) -> None:
    source = harness.source(harness.server(script(hang_at="SELECT")))
    started = time.monotonic()
    with pytest.raises(TransientSourceError, match="timed out"):
        source.select("INBOX")
    assert time.monotonic() - started < 3
    with pytest.raises(TransientSourceError, match="failed earlier"):
        source.select("INBOX")
    source.close()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"hello there\r\n", "tagged response"),
        (b"* " + b"x" * 70_000 + b"\r\n", "line over"),
        (b"* OK [UIDVALIDITY 0] zero\r\n", "invalid UIDVALIDITY"),
        (b"ZZ9 OK wrong tag\r\n", "unknown tag"),
        (b"* 1 FETCH (UID 1 FLAGS (\\Seen)\r\n$TAG OK\r\n", "unbalanced"),
        (b'* LIST () "/" {99999999999}\r\n', "over the limit"),
        (b"+ go on\r\n", "continuation"),
    ],
)
def test_garbage_replies_are_protocol_violations(
    harness: Harness, reply: bytes, message: str
) -> None:
    source = harness.source(harness.server(script(replies={"SELECT": reply})))
    with pytest.raises(ProtocolViolation, match=message):
        source.select("INBOX")
    source.close()


def test_absurd_header_literal_is_refused(harness: Harness) -> None:
    reply = b"* 1 FETCH (UID 10 BODY[HEADER] {9999999999}\r\n"
    source = harness.source(
        harness.server(script(b"x", replies={"UID FETCH 10 (UID RFC822.SIZE BODY": reply}))
    )
    refs = source.select("INBOX").messages
    with pytest.raises(ProtocolViolation, match="over the limit"):
        list(source.fetch_headers(refs))


def test_unsolicited_bye_is_transient(harness: Harness) -> None:
    source = harness.source(harness.server(script(replies={"SELECT": b"* BYE shutting down\r\n"})))
    with pytest.raises(TransientSourceError, match="shutting down"):
        source.select("INBOX")


# --- TLS material ------------------------------------------------------------------------


class TlsFiles:
    """A throwaway self-signed certificate for localhost and 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.ca = str(directory / "cert.pem")
        key_file = directory / "key.pem"
        Path(self.ca).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server.load_cert_chain(self.ca, key_file)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return TlsFiles(tmp_path_factory.mktemp("tls"))
