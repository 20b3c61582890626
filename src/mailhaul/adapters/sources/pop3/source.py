"""The POP3 source: our own small streaming client on ``Wire`` (RFC 1939, 2449, 2595, 5034).

Messages stream from ``RETR`` in chunks of at most ``CHUNK_SIZE`` bytes, so memory does not
grow with message size. With PIPELINING, up to ``PIPELINE_DEPTH`` commands (and about
``PIPELINE_BYTES`` of listed octets) are sent ahead of their replies; without it, one
command at a time. Deletions become final only at ``close()`` (QUIT).
"""

from __future__ import annotations

import datetime
import secrets
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence

from mailhaul.adapters.sources.pop3.parsing import (
    parse_capabilities,
    parse_scan_listing,
    parse_uid_listing,
    without_protocol_crlf,
)
from mailhaul.adapters.sources.pop3.session import Body, Pending, Pop3Connection
from mailhaul.adapters.sources.pop3.signin import Pop3SignIn
from mailhaul.domain.errors import (
    ConfigError,
    ProtocolViolation,
    SessionRefused,
    SourceError,
    TlsFailure,
    TransientSourceError,
    UnsupportedByServer,
)
from mailhaul.domain.folders import RemoteFolder
from mailhaul.domain.messages import (
    POP3_FOLDER,
    FolderListing,
    FolderState,
    MessageRef,
    header_date,
)
from mailhaul.domain.options import Credentials, Protocol, Security, SourceEndpoint
from mailhaul.domain.ports import LogFn
from mailhaul.domain.redaction import Redactor

PIPELINE_DEPTH = 32
"""How many commands are sent ahead of their replies when the server offers PIPELINING."""
PIPELINE_BYTES = 2 * 1024 * 1024
"""Listed octets in flight beyond which no further RETR is sent ahead."""
MAX_HEADER_BYTES = 8 * 1024 * 1024
"""A ``TOP n 0`` answer longer than this is a violation (headers are collected in memory)."""
"""RFC 2449/3206 response codes that mean "try again later", not "wrong password"."""


class Pop3Source:
    """A POP3 mailbox (``MailSource``); the password never appears in logs, errors or repr."""

    def __init__(self, endpoint: SourceEndpoint, credentials: Credentials, log: LogFn) -> None:
        if endpoint.protocol is not Protocol.POP3:
            raise ConfigError(f"{endpoint.describe()} is not a POP3 endpoint")
        self._endpoint = endpoint
        self._credentials = credentials
        self._log_fn = log
        self._redact = Redactor.for_credentials(credentials, (endpoint.host, endpoint.port))
        self._conn = Pop3Connection(endpoint, self._redact)
        self._caps: frozenset[str] = frozenset()
        self._capa_known = False
        self._listing: dict[int, str] | None = None
        self._deleted: set[int] = set()
        self._session_tag = secrets.token_hex(8)
        self._top_refused = False
        self.deletions_committed = False
        """Whether the last ``close()`` got +OK to its QUIT after at least one DELE."""

    def __repr__(self) -> str:
        return f"Pop3Source({self._endpoint.describe()}, user={self._credentials.username!r})"

    # MailSource ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect, read the greeting, negotiate TLS as configured, and log in."""
        where = self._endpoint.describe()
        self.deletions_committed = False
        self._listing = None
        self._session_tag = secrets.token_hex(8)  # names messages of servers without UIDL
        self._conn.kill()
        self._conn = conn = Pop3Connection(self._endpoint, self._redact)
        scrubbed: BaseException | None = None
        try:
            conn.open()
            greeting = conn.read_reply()
            if not greeting.ok:
                raise SessionRefused(f"{where} refused the session: {greeting.text}")
            self._refresh_capabilities()
            if self._endpoint.security is Security.STARTTLS:
                self._start_tls()
            elif self._endpoint.security is Security.NONE:
                what = self._credentials.kind
                self._log(f"security is 'none': the {what} is sent to {where} in clear")
            if "UTF8" in self._caps:
                self._enable_utf8()
            self._login()
            if self._capa_known:
                self._refresh_capabilities()  # RFC 2449: they may change after login
        except BaseException as exc:
            conn.kill()
            scrubbed = self._redact.scrubbed(exc)  # raised below: no __context__ keeps it
            if scrubbed is exc:
                raise
        if scrubbed is not None:
            raise scrubbed
        self._log(f"logged in to {where} as {self._credentials.username}")

    def capabilities(self) -> frozenset[str]:
        """The CAPA names after login, upper-case (each SASL mechanism also as AUTH=…)."""
        return self._caps

    def certificate_expires(self) -> float | None:
        """When the server's verified certificate expires (None: no TLS, or unchecked)."""
        return self._conn.wire.cert_expires

    def folder_state(self, folder: str) -> FolderState | None:
        """None: POP3 has no way to tell "unchanged" short of listing every UIDL."""
        return None

    def list_folders(self) -> list[str]:
        """``["INBOX"]``: a POP3 maildrop is one folder."""
        return [POP3_FOLDER]

    def list_mailboxes(self) -> list[RemoteFolder]:
        """INBOX only: a POP3 maildrop is one folder."""
        return [RemoteFolder(POP3_FOLDER)]

    def select(self, folder: str, known: Collection[str] = ()) -> FolderListing:
        """List INBOX with UIDL and LIST (sent together when the server offers PIPELINING)."""
        if folder.upper() != POP3_FOLDER:
            raise ConfigError(f"POP3 has only the INBOX folder, not {folder!r}")
        conn = self._conn
        conn.sync()
        pipelined = "PIPELINING" in self._caps
        conn.send("UIDL\r\nLIST\r\n" if pipelined else "UIDL\r\n")
        uidl_reply = conn.read_reply()
        uidl_lines = conn.read_lines() if uidl_reply.ok else None
        if not pipelined:
            conn.send("LIST\r\n")
        list_reply = conn.read_reply()
        if not list_reply.ok:
            raise TransientSourceError(f"LIST failed: {list_reply.text}")
        list_lines = conn.read_lines()
        try:
            sizes = parse_scan_listing(list_lines)
            if uidl_lines is not None:
                uids = parse_uid_listing(uidl_lines, sizes)
            else:
                self._log(f"UIDL refused ({uidl_reply.text}): unique-ids last one session")
                uids = {number: f"no-uidl:{self._session_tag}:{number}" for number in sizes}
        except ProtocolViolation:
            conn.kill()
            raise
        if len(set(uids.values())) != len(uids):
            self._log("warning: the server lists some unique-ids more than once")
        self._listing = uids
        self._deleted.clear()
        messages = tuple(
            MessageRef(uid=uids[number], number=number, size=sizes[number])
            for number in sorted(sizes)
        )
        return FolderListing(
            folder=POP3_FOLDER,
            uidvalidity=None,
            messages=messages,
            stable_uids=uidl_lines is not None,
        )

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, Iterator[bytes]]]:
        """Stream each message with RETR, pipelined when the server allows it."""
        return self._fetch(self._checked(refs))

    def gmail_ids(self, refs: Sequence[MessageRef]) -> dict[str, str]:
        """None on POP3: Gmail's POP3 has no labels to repeat a message."""
        return {}

    def dated_before(self, refs: Sequence[MessageRef], day: datetime.date) -> set[str]:
        """By each message's ``Date:`` header (``TOP n 0``); one without a readable date
        is not before (it is fetched: nothing is skipped on a guess)."""
        return {
            ref.uid
            for ref, head in self.fetch_headers(refs)
            if (dated := header_date(head)) is not None and dated < day
        }

    def fetch_headers(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        """Each message's header section through the blank line, with ``TOP n 0``."""
        wanted = self._checked(refs)
        if self._top_refused or (self._capa_known and "TOP" not in self._caps):
            raise UnsupportedByServer(f"{self._endpoint.describe()} does not offer TOP")
        return self._fetch_headers(wanted)

    def mark_seen(self, refs: Iterable[MessageRef]) -> None:
        """POP3 has no flags: nothing to do."""

    def ensure_folder(self, folder: str) -> None:
        """POP3 has no folders."""
        raise ConfigError("POP3 has no folders to move mail into: moving needs IMAP")

    def move(self, refs: Iterable[MessageRef], folder: str) -> None:
        """POP3 has no folders."""
        raise ConfigError("POP3 has no folders to move mail into: moving needs IMAP")

    def delete(self, refs: Iterable[MessageRef]) -> None:
        """Mark messages deleted with DELE; the server removes them only at QUIT."""
        wanted = [ref for ref in self._checked(refs) if ref.number not in self._deleted]
        conn = self._conn
        conn.sync()
        depth = PIPELINE_DEPTH if "PIPELINING" in self._caps else 1
        failures: list[str] = []
        for start in range(0, len(wanted), depth):
            batch = wanted[start : start + depth]
            owed = [Pending("DELE", ref.number, multiline=False) for ref in batch]
            conn.send("".join(f"DELE {ref.number}\r\n" for ref in batch), owed)
            for ref, pend in zip(batch, owed, strict=True):
                reply = conn.take_reply(pend)
                if reply.ok:
                    self._deleted.add(ref.number)
                else:
                    failures.append(f"message {ref.number}: {reply.text}")
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise TransientSourceError(f"DELE failed for {failures[0]}{more}")

    def close(self) -> None:
        """Send QUIT (committing deletions) and read its reply; never raises."""
        conn = self._conn
        try:
            if conn.usable:
                conn.sync()
                conn.send("QUIT\r\n")
                reply = conn.read_reply()
                if not reply.ok:
                    self._log(f"QUIT refused, deletions not committed: {reply.text}")
                elif self._deleted:
                    self.deletions_committed = True
                    self._log(f"QUIT: {len(self._deleted)} deletion(s) committed")
        except Exception as exc:  # close() must never raise
            self._log(f"closing {self._endpoint.describe()}: {exc}")
        finally:
            conn.kill()

    def abort(self) -> None:
        """Drop the connection without QUIT (the server rolls back deletions)."""
        self._conn.kill()

    # retrieval ----------------------------------------------------------------------------
    def _fetch(self, refs: list[MessageRef]) -> Iterator[tuple[MessageRef, Iterator[bytes]]]:
        for ref, body in self._bodies(refs, "RETR {}\r\n", by_size=True):
            yield ref, without_protocol_crlf(body.chunks(), ref.size)

    def _fetch_headers(self, refs: list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for ref, body in self._bodies(refs, "TOP {} 0\r\n", by_size=False):
            parts: list[bytes] = []
            total = 0
            while (chunk := body.next_chunk()) is not None:
                total += len(chunk)
                if total > MAX_HEADER_BYTES:
                    self._conn.kill()
                    raise ProtocolViolation(f"TOP {ref.number} 0 sent over {total} bytes")
                parts.append(chunk)
            yield ref, b"".join(parts)

    def _bodies(
        self, refs: list[MessageRef], template: str, *, by_size: bool
    ) -> Iterator[tuple[MessageRef, Body]]:
        """Send ``template`` per ref (a window ahead when pipelining); yield each reply body.

        The window holds at most ``depth`` commands and, beyond the first, about
        ``PIPELINE_BYTES`` of listed octets, so an abandoned fetch costs little to drain.

        An abandoned body is drained before the next reply is read.
        """
        conn = self._conn
        conn.sync()
        verb = template.split(" ", 1)[0]
        depth = PIPELINE_DEPTH if "PIPELINING" in self._caps else 1
        in_flight: deque[tuple[MessageRef, Pending]] = deque()
        in_flight_bytes = 0
        following = 0
        while following < len(refs) or in_flight:
            batch: list[tuple[MessageRef, Pending]] = []
            # Top the window up once half of it is used: fewer, larger sends.
            refill = len(in_flight) <= depth // 2
            while refill and following < len(refs) and len(in_flight) + len(batch) < depth:
                ref = refs[following]
                size = ref.size if by_size else 0
                if (in_flight or batch) and in_flight_bytes + size > PIPELINE_BYTES:
                    break
                batch.append((ref, Pending(verb, ref.number, multiline=True)))
                in_flight_bytes += size
                following += 1
            if batch:
                commands = "".join(template.format(ref.number) for ref, _ in batch)
                conn.send(commands, [pend for _, pend in batch])
                in_flight.extend(batch)
            ref, pend = in_flight.popleft()
            in_flight_bytes -= ref.size if by_size else 0
            reply = conn.take_reply(pend)
            if not reply.ok and verb == "TOP" and not self._top_refused:
                # The maildrop is locked for the session: TOP of a listed message fails only
                # when the server does not really have it. Callers fall back to RETR.
                self._top_refused = True
                self._log(f"the server refused TOP ({reply.text}); doing without it")
                raise UnsupportedByServer(f"{self._endpoint.describe()} refused TOP")
            if not reply.ok:
                raise TransientSourceError(
                    f"{verb} of message {ref.number} failed (deleted by another client?): "
                    f"{reply.text}"
                )
            body = conn.open_body()
            yield ref, body
            conn.release_body(body)

    # login --------------------------------------------------------------------------------
    def _enable_utf8(self) -> None:
        """Say ``UTF8`` (RFC 6856, in the AUTHORIZATION state) to a server that offers it.

        Courier serves mail with raw 8-bit headers to other clients as a generated wrapper
        (``Cannot display Unicode content``) instead of the message itself.
        """
        self._conn.send("UTF8\r\n")
        reply = self._conn.read_reply()
        if not reply.ok:
            self._log(f"the server offers UTF8 but refused it ({reply.text}); continuing")

    def _start_tls(self) -> None:
        where = self._endpoint.describe()
        if "STLS" not in self._caps:
            raise TlsFailure(f"{where} does not offer STLS; not continuing without TLS")
        self._conn.send("STLS\r\n")
        reply = self._conn.read_reply()
        if not reply.ok:
            raise TlsFailure(f"{where} refused STLS: {reply.text}")
        self._conn.start_tls()
        self._refresh_capabilities()  # RFC 2595: forget what was said before TLS

    def _login(self) -> None:
        Pop3SignIn(self._conn, self._credentials, self._endpoint, self._log).run(self._caps)

    def _refresh_capabilities(self) -> None:
        self._conn.send("CAPA\r\n")
        reply = self._conn.read_reply()
        self._capa_known = reply.ok
        self._caps = parse_capabilities(self._conn.read_lines()) if reply.ok else frozenset()

    # helpers ------------------------------------------------------------------------------
    def _checked(self, refs: Iterable[MessageRef]) -> list[MessageRef]:
        """``refs`` as a list, each checked against this session's listing."""
        if self._listing is None:
            raise SourceError("select() must come before fetching or deleting")
        wanted = list(refs)
        for ref in wanted:
            if self._listing.get(ref.number) != ref.uid:
                raise SourceError(
                    f"message {ref.number} ({ref.uid}) is not in this session's listing"
                )
        return wanted

    def _log(self, line: str) -> None:
        self._log_fn(self._redact(line))
