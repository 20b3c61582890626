"""The interfaces the services need from the outside world (implemented by adapters)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Protocol

from mailhaul.domain.folders import RemoteFolder
from mailhaul.domain.messages import FolderListing, FolderState, MessageRef

LogFn = Callable[[str], None]
"""Where adapters write human-readable run-log lines (never passwords)."""


class MailSource(Protocol):
    """A connected-on-demand POP3 or IMAP mailbox.

    Adapters translate every library/socket error into a ``SourceError`` subclass.
    Lifecycle: ``connect()`` → (``select()`` → ``fetch()``/``mark_seen()``/``delete()``)* →
    ``close()`` (polite QUIT/LOGOUT: commits POP3 deletions) or ``abort()`` (drop the socket).
    """

    def connect(self) -> None:
        """Connect, negotiate TLS as configured, and log in."""
        ...

    def capabilities(self) -> frozenset[str]:
        """The server's capabilities after login (upper-case)."""
        ...

    def certificate_expires(self) -> float | None:
        """When the server's verified TLS certificate expires (Unix time); None without
        TLS, or when the certificate was not checked."""
        ...

    def list_folders(self) -> list[str]:
        """The names of the server's folders (POP3: only ``INBOX``)."""
        ...

    def list_mailboxes(self) -> list[RemoteFolder]:
        """The server's folders with their hierarchy separator and attributes (special
        use, ``\\Noselect``), as LIST gives them (POP3: only ``INBOX``)."""
        ...

    def select(self, folder: str, known: Collection[str] = ()) -> FolderListing:
        """Open ``folder`` (POP3: only ``INBOX``) and list its messages with sizes.

        ``known``: UIDs the caller has already delivered or refused. A source may list
        those with size 0 (it need not fetch their details), which makes the poll of a
        large folder with nothing new cheap (IMAP lists them with SEARCH).
        """
        ...

    def folder_state(self, folder: str) -> FolderState | None:
        """The folder's state without opening it (IMAP STATUS), or None if it cannot be had
        cheaply (POP3, or a server that does not answer it)."""
        ...

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, Iterator[bytes]]]:
        """Stream the messages in ``refs`` (in order), each as an iterator of byte chunks.

        Chunks are the message exactly as stored (POP3 dot-unstuffed), line endings as
        sent on the wire (CRLF). Each chunk iterator must be consumed, or abandoned, before
        the next message is taken: the source drains an abandoned message itself. The
        source may pipeline the requests internally.
        """
        ...

    def gmail_ids(self, refs: Sequence[MessageRef]) -> dict[str, str]:
        """Gmail's X-GM-MSGID of each message (UID -> id), one id for all its labels;
        empty where the server has no X-GM-EXT-1 (and on POP3)."""
        ...

    def dated_before(self, refs: Sequence[MessageRef], day: datetime.date) -> set[str]:
        """The UIDs of ``refs`` dated before ``day`` (IMAP: the internal date, by SEARCH;
        POP3: the ``Date:`` header, by TOP). A message without a readable date is not."""
        ...

    def fetch_headers(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        """The header section of each message (through the blank line), as stored.

        IMAP: ``BODY.PEEK[HEADER]``; POP3: ``TOP n 0``. Used to reconcile after a
        UIDVALIDITY change.
        """
        ...

    def mark_seen(self, refs: Iterable[MessageRef]) -> None:
        """Set \\Seen on the messages (IMAP); a no-op on POP3."""
        ...

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` unless the server has it (IMAP; POP3 has one folder)."""
        ...

    def move(self, refs: Iterable[MessageRef], folder: str) -> None:
        """Move the messages of the selected folder to ``folder`` (IMAP: MOVE, else COPY,
        \\Deleted and expunge)."""
        ...

    def delete(self, refs: Iterable[MessageRef]) -> None:
        """Delete the messages (POP3: DELE, final at close(); IMAP: \\Deleted + expunge)."""
        ...

    def close(self) -> None:
        """Log out politely (QUIT/LOGOUT); never raises."""
        ...

    def abort(self) -> None:
        """Drop the connection without logging out; never raises."""
        ...


class Delivery(Protocol):
    """One message being written to a sink.

    Any method but ``abort()`` may raise a ``DeliveryError``; after one, the caller calls
    ``abort()``. Sinks that hand the message to another program (LMTP, SMTP, an MDA) may
    hold the header section (up to 64 KiB) to find the envelope sender, and open their
    transaction on the ``write()`` that completes it: a refusal of the destination
    (``DestinationMissing``) can then come from that ``write()`` or, for a message whose
    header section never ends, from ``commit()``.
    """

    def write(self, chunk: bytes) -> None:
        """Append bytes of the message (CRLF or LF line endings)."""
        ...

    def commit(self) -> str | None:
        """Complete the message (durable once its session's ``flush()`` returns); its receipt.

        A hand-off (LMTP, SMTP, MDA) is durable when ``commit()`` returns, and has no receipt
        (None).
        """
        ...

    def abort(self) -> None:
        """Throw away what was written; never raises."""
        ...


class DeliverySession(Protocol):
    """One run's deliveries into a sink: opened when the run starts, closed when it ends.

    The session holds what the run's deliveries share and nothing outlives it: the messages
    waiting to be made durable (Maildir), the connection (LMTP, SMTP: given back to the sink
    for the next session when this one closes), the account label (an MDA's ``{account}``).
    One session is used by one thread at a time.

    ``begin()`` may raise a ``DeliveryError`` (backend unreachable: temporary; destination
    refused: ``DestinationMissing``). Hand-off sinks (LMTP, SMTP, MDA) return None from
    ``planned_receipt()`` and ``was_delivered()``: a run that dies between the backend's
    acceptance and the poller's record fetches that message again (the one duplicate window
    those methods leave).
    """

    def planned_receipt(self, destination: str, hint: str) -> str | None:
        """A receipt to record before delivery, so a crash can be reconciled; None if none."""
        ...

    def begin(self, destination: str, receipt: str | None, folder: str | None = None) -> Delivery:
        """Start delivering one message to ``destination`` (an e-mail address).

        ``folder``: a folder of the destination's mailbox (``Junk``) where the sink can file
        into one (a Maildir's ``.Junk``); the others deliver into the mailbox itself.
        """
        ...

    def flush(self) -> None:
        """Make every delivery this session committed since the last flush durable.

        Maildir: fsync the files, move them into new/, fsync new/ (if one cannot be made
        durable, none of them is delivered and a ``TemporaryDeliveryError`` says why). A
        hand-off is durable when its ``commit()`` returns: nothing to do.
        """
        ...

    def was_delivered(self, destination: str, receipt: str) -> bool | None:
        """Whether a message with this receipt is in the destination; None if unknowable."""
        ...

    def close(self) -> None:
        """End the session; never raises. Deliveries committed but not flushed are thrown
        away (they were never recorded as delivered, so they are fetched again)."""
        ...


class MailSink(Protocol):
    """A local destination: Maildir, LMTP, SMTP or an MDA (one per delivery configuration).

    Safe to share between threads: each run opens its own ``DeliverySession``.
    """

    def open_session(self, account_label: str) -> DeliverySession:
        """Start one run's deliveries; ``account_label`` fills an MDA's ``{account}``."""
        ...

    def files_folders(self, destination: str) -> bool:
        """Whether mail for ``destination`` can be filed into a folder of its mailbox
        (``begin(…, folder)``): Maildir++, LMTP with ``+detail``; not SMTP or an MDA."""
        ...

    def close(self) -> None:
        """Let go of what no session holds (LMTP/SMTP: QUIT idle connections); never
        raises. The sink stays usable."""
        ...
