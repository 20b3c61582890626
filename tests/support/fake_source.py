"""An in-memory POP3-like or IMAP-like mailbox implementing the MailSource port.

Used by unit tests of the polling service; real protocol behaviour is covered by the
integration tests against Dovecot and the scripted servers. Faults are injected with
``fail_at``: a callable receiving an event name (``"fetch:<uid>"``, ``"chunk:<uid>"``,
``"delete"``, ``"select"``) that may raise.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from mailhaul.domain.errors import ConfigError, TransientSourceError
from mailhaul.domain.folders import RemoteFolder
from mailhaul.domain.messages import FolderListing, FolderState, MessageRef, header_date


@dataclass
class FakeMessage:
    """One stored message."""

    uid: int
    data: bytes
    seen: bool = False
    deleted: bool = False


@dataclass
class FakeServer:
    """The server side: folders of messages that survive between sessions."""

    pop3: bool = False
    uidvalidity: int = 1
    folders: dict[str, list[FakeMessage]] = field(default_factory=lambda: {"INBOX": []})
    next_uid: int = 1
    fail_at: Callable[[str], None] | None = None
    chunk_size: int = 7
    sessions: int = 0
    uidl: bool = True

    def add(self, data: bytes, folder: str = "INBOX", seen: bool = False) -> int:
        """Store a message; returns its UID."""
        uid = self.next_uid
        self.next_uid += 1
        self.folders.setdefault(folder, []).append(FakeMessage(uid, data, seen))
        return uid

    def messages(self, folder: str = "INBOX") -> list[FakeMessage]:
        """What is on the server now (not deleted)."""
        return [m for m in self.folders.get(folder, []) if not m.deleted]

    def renumber(self) -> None:
        """Give every message a new UID and a new UIDVALIDITY (a rebuilt folder)."""
        self.uidvalidity += 1
        for messages in self.folders.values():
            for message in messages:
                message.uid = self.next_uid
                self.next_uid += 1

    def source(self, *_args: object) -> FakeSource:
        """A new session (the signature of a source factory)."""
        self.sessions += 1
        return FakeSource(self)


class FakeSource:
    """One session with a FakeServer; POP3 mode applies deletions only at close()."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.folder = "INBOX"
        self._pending_delete: list[FakeMessage] = []
        self.closed = False

    def _fault(self, event: str) -> None:
        if self.server.fail_at is not None:
            self.server.fail_at(event)

    def connect(self) -> None:
        self._fault("connect")

    def certificate_expires(self) -> float | None:
        return None

    def capabilities(self) -> frozenset[str]:
        return frozenset()

    def _ref(self, message: FakeMessage, number: int) -> MessageRef:
        if self.server.pop3:
            uid = (
                f"UIDL{message.uid}"
                if self.server.uidl
                else f"no-uidl:s{self.server.sessions}:{number}"
            )
            return MessageRef(uid=uid, number=number, size=len(message.data))
        return MessageRef(str(message.uid), message.uid, len(message.data), message.seen)

    def _find(self, ref: MessageRef) -> FakeMessage | None:
        for number, message in enumerate(self.server.messages(self.folder), 1):
            if self._ref(message, number).uid == ref.uid:
                return message
        return None

    def folder_state(self, folder: str) -> FolderState | None:
        return None  # every poll lists the folder in full (the quick check needs real IMAP)

    def list_folders(self) -> list[str]:
        self._fault("list_folders")
        return list(self.server.folders)

    def list_mailboxes(self) -> list[RemoteFolder]:
        self._fault("list_folders")
        return [RemoteFolder(name, "/") for name in self.server.folders]

    def select(self, folder: str, known: Collection[str] = ()) -> FolderListing:
        self._fault("select")
        if folder not in self.server.folders:
            raise ConfigError(f"no folder {folder}")
        self.folder = folder
        refs = tuple(self._ref(m, n) for n, m in enumerate(self.server.messages(folder), 1))
        return FolderListing(
            folder,
            None if self.server.pop3 else self.server.uidvalidity,
            refs,
            stable_uids=self.server.uidl or not self.server.pop3,
        )

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, Iterator[bytes]]]:
        for ref in refs:
            self._fault(f"fetch:{ref.uid}")
            message = self._find(ref)
            if message is None:
                continue
            yield ref, self._chunks(ref, message.data)

    def _chunks(self, ref: MessageRef, data: bytes) -> Iterator[bytes]:
        size = self.server.chunk_size
        for start in range(0, len(data), size):
            self._fault(f"chunk:{ref.uid}")
            yield data[start : start + size]

    def gmail_ids(self, refs: Sequence[MessageRef]) -> dict[str, str]:
        return {}

    def dated_before(self, refs: Sequence[MessageRef], day: datetime.date) -> set[str]:
        return {
            ref.uid
            for ref, head in self.fetch_headers(refs)
            if (dated := header_date(head)) is not None and dated < day
        }

    def fetch_headers(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for ref in refs:
            message = self._find(ref)
            if message is not None:
                end = message.data.find(b"\r\n\r\n")
                yield ref, message.data[: end + 4] if end >= 0 else message.data

    def mark_seen(self, refs: Iterable[MessageRef]) -> None:
        if not self.server.pop3:
            for ref in refs:
                message = self._find(ref)
                if message:
                    message.seen = True

    def ensure_folder(self, folder: str) -> None:
        self.server.folders.setdefault(folder, [])

    def move(self, refs: Iterable[MessageRef], folder: str) -> None:
        self._fault("delete")
        for message in [m for m in (self._find(ref) for ref in refs) if m is not None]:
            self.server.add(message.data, folder, message.seen)
            message.deleted = True

    def delete(self, refs: Iterable[MessageRef]) -> None:
        self._fault("delete")
        targets = [m for m in (self._find(ref) for ref in refs) if m is not None]
        if self.server.pop3:
            self._pending_delete.extend(targets)
        else:
            for message in targets:
                message.deleted = True

    def close(self) -> None:
        for message in self._pending_delete:
            message.deleted = True
        self._pending_delete = []
        self.closed = True

    def abort(self) -> None:
        self._pending_delete = []
        self.closed = True


__all__ = ["FakeMessage", "FakeServer", "FakeSource", "TransientSourceError"]
