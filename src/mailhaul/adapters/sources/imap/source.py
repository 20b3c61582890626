"""The IMAP ``MailSource``: connect, secure, log in, list, stream, flag and expunge.

Built on ``Wire`` (socket + TLS + buffer), ``ImapConnection`` (``session``: tags, bounded
response reading, untagged bookkeeping), ``SignIn`` (``signin``: greeting, TLS, login),
``parser`` (pure parsing) and ``fetching`` (pipelined streaming). The password never
appears in a log line, an exception or ``repr``.

While a ``fetch()`` or ``fetch_headers()`` iterator is running, ``mark_seen()`` and
``delete()`` may be called between messages (e.g. right after each delivery): their
commands join the fetch's pipeline and are confirmed as it goes on (a refusal is then
logged, the message stays on the server), and ``delete()`` sends its EXPUNGE only after
the STORE succeeded. Any other call (or a flag change over 16 KiB of commands) first
drains the unfinished fetch: its remaining messages are skipped with a log line, and a
half-read message's chunk iterator raises instead of ending, so it is never half-stored.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Collection, Iterable, Iterator, Sequence

from mailhaul.adapters.sources.imap.commands import compress_uids, quote
from mailhaul.adapters.sources.imap.fetching import fetch_bodies, fetch_headers
from mailhaul.adapters.sources.imap.listing import SEARCH_LISTING_MAX, FolderLister
from mailhaul.adapters.sources.imap.moving import (
    ensure_folder,
    gmail_ids,
    move_commands,
    search_before,
)
from mailhaul.adapters.sources.imap.names import encoded_folder, remote_folder
from mailhaul.adapters.sources.imap.parser import (
    MAX_UID,
    Response,
    Status,
    Untagged,
)
from mailhaul.adapters.sources.imap.session import TRANSIENT_CODES, ImapConnection
from mailhaul.adapters.sources.imap.signin import SignIn
from mailhaul.adapters.sources.wire import Wire
from mailhaul.domain.errors import (
    ConfigError,
    MailhaulError,
    ProtocolViolation,
    TlsFailure,
    TransientSourceError,
)
from mailhaul.domain.folders import RemoteFolder
from mailhaul.domain.messages import FolderListing, FolderState, MessageRef
from mailhaul.domain.options import Credentials, SourceEndpoint
from mailhaul.domain.ports import LogFn
from mailhaul.domain.redaction import Redactor

MAX_DEFERRED_BYTES = 16 * 1024
MAX_FOLDERS = 10_000  # folders a LIST may name before the rest are ignored
"""Most command bytes pipelined into a running fetch (more waits for the fetch to end)."""


class ImapSource:
    """An IMAP4rev1 mailbox implementing ``MailSource``."""

    def __init__(self, endpoint: SourceEndpoint, credentials: Credentials, log: LogFn) -> None:
        self._endpoint = endpoint
        self._credentials = credentials
        self._log = log
        self._wire = Wire(endpoint)
        self._redact = Redactor.for_credentials(credentials, (endpoint.host, endpoint.port))
        self._conn = ImapConnection(self._wire, log, self._redact)
        self._caps: frozenset[str] = frozenset()
        self._broken: set[str] = set()
        """Extensions the server advertises but refused to carry out (not used again)."""
        self._utf8 = False
        """``ENABLE UTF8=ACCEPT`` succeeded (RFC 6855): folder names travel as UTF-8."""
        self._selected: str | None = None

    def __repr__(self) -> str:
        return f"ImapSource({self._endpoint.describe()}, user={self._credentials.username!r})"

    # connecting -------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect, negotiate TLS as configured, and log in."""
        try:
            self._wire.open()
            signin = SignIn(self._conn, self._credentials, self._refused_extension)
            self._caps = signin.run()
            if "UTF8=ACCEPT" in self._caps:
                self._enable_utf8()
        except MailhaulError as exc:
            if isinstance(exc, TransientSourceError | ProtocolViolation | TlsFailure):
                self._conn.fail(exc)
            self._wire.abort()
            raise

    def capabilities(self) -> frozenset[str]:
        """The server's capabilities after login (upper-case)."""
        return self._caps

    def certificate_expires(self) -> float | None:
        """When the server's verified certificate expires (None: no TLS, or unchecked)."""
        return self._wire.cert_expires

    def _offers(self, extension: str) -> bool:
        """Whether the server advertises ``extension`` and has not refused it this session."""
        return extension in self._caps and extension not in self._broken

    def _refused_extension(self, extension: str, status: Status) -> None:
        """The server advertised ``extension`` but refused it: do without, say so once."""
        if extension not in self._broken:
            self._broken.add(extension)
            self._log(
                f"imap: the server advertises {extension} but refused it "
                f"({status.kind} {self._redact(status.text)}); doing without it"
            )

    def _enable_utf8(self) -> None:
        """``ENABLE UTF8=ACCEPT``: a server that downgrades 8-bit headers for older clients
        (RFC 6855 §3: a stand-in, or the headers rewritten) then serves mail as stored."""
        enabled: set[str] = set()

        def on_enabled(response: Response) -> None:
            if isinstance(response, Untagged) and response.name == "ENABLED":
                enabled.update(str(value).upper() for value in response.values)

        status = self._conn.command(b"ENABLE UTF8=ACCEPT", on_enabled)
        if status.kind == "OK" and "UTF8=ACCEPT" in enabled:
            self._utf8 = True
        elif status.kind != "OK":
            self._refused_extension("UTF8=ACCEPT", status)

    # folders ----------------------------------------------------------------------------
    def list_folders(self) -> list[str]:
        """All folder names (``LIST "" "*"``), decoded from modified UTF-7."""
        return [folder.name for folder in self.list_mailboxes()]

    def list_mailboxes(self) -> list[RemoteFolder]:
        """All folders with separator and attributes (``LIST "" "*"``, asking for the
        special-use attributes where the server has SPECIAL-USE), names decoded from
        modified UTF-7."""
        self._conn.drain()
        found: list[RemoteFolder] = []

        def on_data(response: Response) -> None:
            if not isinstance(response, Untagged) or response.name != "LIST":
                return
            if len(response.values) >= 3 and len(found) < MAX_FOLDERS:
                found.append(remote_folder(response.values, self._utf8))

        command = b'LIST "" "*"'
        if self._offers("SPECIAL-USE"):
            command += b" RETURN (SPECIAL-USE)"
        self._conn.check(self._conn.command(command, on_data), "LIST")
        return found

    def select(self, folder: str, known: Collection[str] = ()) -> FolderListing:
        """Open ``folder`` and list its messages (UID, size, \\Seen)."""
        encoded = encoded_folder(folder, self._utf8)
        conn = self._conn
        conn.drain()
        self._selected = None
        conn.numbers.reset()
        uidvalidity: list[int] = []
        uidnext: list[int] = []

        def on_select(response: Response) -> None:
            if isinstance(response, Status) and response.code == "UIDVALIDITY":
                value = response.code_args[0] if response.code_args else None
                if not isinstance(value, int) or not 0 < value <= MAX_UID:
                    raise ProtocolViolation(f"invalid UIDVALIDITY {value!r} for {folder!r}")
                uidvalidity.append(value)
            elif isinstance(response, Status) and response.code == "UIDNEXT":
                value = response.code_args[0] if response.code_args else None
                if isinstance(value, int) and 0 < value <= MAX_UID + 1:
                    uidnext.append(value)

        status = conn.command(b"SELECT " + quote(encoded, self._utf8), on_select)
        if status.kind == "NO" and status.code not in TRANSIENT_CODES:
            raise ConfigError(
                f"folder {folder!r} does not exist on the server: {self._redact(status.text)}"
            )
        self._conn.check(status, f"SELECT {folder!r}")
        if not uidvalidity:
            raise self._conn.violation(f"server sent no UIDVALIDITY for folder {folder!r}")
        if status.code == "READ-ONLY":
            self._log(f"imap: folder {folder!r} is read-only: flags cannot be changed")
        lister = FolderLister(conn)
        if conn.numbers.exists == 0:
            messages: list[MessageRef] = []
        elif known and (conn.numbers.exists or 0) <= SEARCH_LISTING_MAX:
            found = lister.by_search(known, esearch=self._offers("ESEARCH"))
            if lister.esearch_refused is not None:
                self._refused_extension("ESEARCH", lister.esearch_refused)
            messages = found if found is not None else lister.by_fetch()
        else:
            messages = lister.by_fetch()
        self._selected = folder
        state = None
        if uidnext and conn.numbers.exists == len(messages):  # nothing came or went while listing
            unseen = sum(1 for ref in messages if not ref.seen)
            state = FolderState(uidvalidity[-1], uidnext[-1], len(messages), unseen)
        return FolderListing(folder, uidvalidity[-1], tuple(messages), state=state)

    def folder_state(self, folder: str) -> FolderState | None:
        """``STATUS folder (UIDVALIDITY UIDNEXT MESSAGES UNSEEN)``: a fraction of the cost of
        SELECT and a listing (figures: bench/README.md, "Figures behind the code"). None if
        the server does not answer it in full; SELECT then says what is wrong, if anything."""
        encoded = encoded_folder(folder, self._utf8)
        conn = self._conn
        conn.drain()
        items: dict[str, int] = {}

        def on_status(response: Response) -> None:
            if not isinstance(response, Untagged) or response.name != "STATUS":
                return
            if len(response.values) < 2 or not isinstance(response.values[-1], list):
                return
            name = response.values[0]
            raw = name if isinstance(name, bytes) else str(name).encode("utf-8", "replace")
            if raw != encoded and not (raw.upper() == b"INBOX" == encoded.upper()):
                return  # an unsolicited STATUS of another folder
            pairs = response.values[-1]
            for key, value in zip(pairs[::2], pairs[1::2], strict=False):
                if isinstance(value, int) and 0 <= value <= MAX_UID + 1:
                    items[str(key).upper()] = value

        items_wanted = b" (UIDVALIDITY UIDNEXT MESSAGES UNSEEN)"
        command = b"STATUS " + quote(encoded, self._utf8) + items_wanted
        if conn.command(command, on_status).kind != "OK":
            return None
        try:
            return FolderState(
                items["UIDVALIDITY"], items["UIDNEXT"], items["MESSAGES"], items["UNSEEN"]
            )
        except KeyError:
            return None

    # messages ---------------------------------------------------------------------------
    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, Iterator[bytes]]]:
        """Stream the messages (pipelined), in the order the server answers; see imap_fetch."""
        self._require_selected()
        return fetch_bodies(self._conn, refs, self._log)

    def gmail_ids(self, refs: Sequence[MessageRef]) -> dict[str, str]:
        """``UID FETCH <refs> (UID X-GM-MSGID)`` where the server has X-GM-EXT-1."""
        if not refs or not self._offers("X-GM-EXT-1"):
            return {}
        self._require_selected()
        self._conn.drain()
        return gmail_ids(self._conn, [ref.number for ref in refs])

    def dated_before(self, refs: Sequence[MessageRef], day: datetime.date) -> set[str]:
        """``UID SEARCH UID <refs> BEFORE <day>``: by internal date, in the selected folder."""
        self._require_selected()
        lister = FolderLister(self._conn)
        found: set[str] = set()
        for command in search_before(sorted(ref.number for ref in refs), day):
            matched = lister.search(command)
            if matched is None:
                raise self._conn.violation("the server refused SEARCH BEFORE")
            found.update(str(uid) for uid in matched)
        return found & {ref.uid for ref in refs}

    def fetch_headers(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        """The header section of each message, in the order the server answers."""
        self._require_selected()
        return fetch_headers(self._conn, refs, self._log)

    def mark_seen(self, refs: Iterable[MessageRef]) -> None:
        """Set \\Seen on the messages (during a fetch: sent now, confirmed by the fetch)."""
        uids = [ref.number for ref in refs]
        if uids:
            self._run(_store_commands(uids, b"\\Seen"), "marking messages \\Seen")

    def ensure_folder(self, folder: str) -> None:
        """``LIST`` it; ``CREATE`` it when the server does not list it."""
        encoded = encoded_folder(folder, self._utf8)
        if ensure_folder(self._conn, quote(encoded, self._utf8), encoded.decode("utf-8")):
            self._log(f"imap: created the folder {folder!r} to move fetched mail into")

    def move(self, refs: Iterable[MessageRef], folder: str) -> None:
        """``UID MOVE`` (RFC 6851) where offered; else ``UID COPY``, then, once the copy is
        made, \\Deleted and expunge (a failure between the two leaves a copy behind, never
        a message lost)."""
        uids = [ref.number for ref in refs]
        if not uids:
            return
        target = quote(encoded_folder(folder, self._utf8), self._utf8)
        steps = move_commands(uids, target, self._offers("MOVE"), self._offers("UIDPLUS"))
        copy, flags, expunge = steps
        self._conn.drain()  # not pipelined into a fetch: the copy is confirmed before \Deleted
        self._run(copy, f"moving messages to {folder!r}", flags or None)
        if expunge:
            self._run(expunge, "expunging the moved messages")

    def delete(self, refs: Iterable[MessageRef]) -> None:
        """Flag the messages \\Deleted and expunge them (only them, given UIDPLUS).

        During a fetch the commands are pipelined behind it and confirmed as the fetch
        goes on; a refusal then is logged (the messages stay on the server).
        """
        uids = [ref.number for ref in refs]
        if not uids:
            return
        if self._offers("UIDPLUS"):
            expunge = [b"UID EXPUNGE " + uid_set.encode() for uid_set in compress_uids(uids)]
        else:
            self._log(
                f"imap: server lacks UIDPLUS: EXPUNGE also removes any other message"
                f" marked \\Deleted in {self._selected!r}"
            )
            expunge = [b"EXPUNGE"]
        self._run(_store_commands(uids, b"\\Deleted"), "deleting messages", expunge)

    def _run(self, commands: list[bytes], what: str, then: list[bytes] | None = None) -> None:
        """Pipeline ``commands``, then ``then`` once they succeeded; wait for both.

        During a fetch they are sent into its pipeline instead (see ``delete``).
        """
        self._require_selected()
        conn = self._conn
        size = sum(map(len, commands + (then or [])))
        fallback = _fallback(then)
        if conn.fetch_active and size <= MAX_DEFERRED_BYTES:
            told = (fallback, self._uidplus_lied) if fallback else None
            conn.deferred.send(commands, what, then, told)
            return
        conn.drain()
        for batch in (commands, then or []):
            tags = conn.send_commands(batch) if batch else []
            statuses = conn.wait_all(tags)
            failed = next((statuses[tag] for tag in tags if statuses[tag].kind != "OK"), None)
            if failed is not None and batch is then and fallback:
                self._uidplus_lied(failed)
                self._run(fallback, what)
                return
            for tag in tags:
                self._conn.check(statuses[tag], what)

    def _uidplus_lied(self, status: Status) -> None:
        self._refused_extension("UIDPLUS", status)

    # ending -----------------------------------------------------------------------------
    def close(self) -> None:
        """Log out politely; never raises.

        Flag changes still in flight are confirmed first (draining an unfinished fetch
        if need be); otherwise an unfinished fetch or a broken session just closes the
        socket: IMAP has nothing to commit at logout.
        """
        with contextlib.suppress(Exception):
            conn = self._conn
            unfinished = conn.active_stream is not None or "UID FETCH" in conn.pending.values()
            if conn.failure is None and self._wire.is_open and (conn.deferred or not unfinished):
                conn.drain()
                conn.logging_out = True
                conn.command(b"LOGOUT")
        self._wire.abort()

    def abort(self) -> None:
        """Drop the connection without logging out."""
        self._wire.abort()

    # helpers ----------------------------------------------------------------------------
    def _require_selected(self) -> None:
        if self._selected is None:
            raise RuntimeError("select() a folder before using its messages")


def _store_commands(uids: list[int], flag: bytes) -> list[bytes]:
    return [
        b"UID STORE " + uid_set.encode() + b" +FLAGS.SILENT (" + flag + b")"
        for uid_set in compress_uids(uids)
    ]


def _fallback(then: list[bytes] | None) -> list[bytes] | None:
    """A plain EXPUNGE in case the server refuses the UID EXPUNGE it advertised."""
    if then and all(command.startswith(b"UID EXPUNGE ") for command in then):
        return [b"EXPUNGE"]
    return None
