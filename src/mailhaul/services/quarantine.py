"""The quarantine as users reach it: list infected messages, release one into the owner's
mailbox, or delete it.

Release delivers through the account's sink as a poll would (durable before the entry is
removed); a crash between the two leaves the entry, so releasing it again delivers a second
copy (the one duplicate window, and it needs a person to act twice).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.quarantine import QuarantinedMessage, QuarantineRows
from mailhaul.adapters.quarantine import QuarantineBox
from mailhaul.domain.access import Principal
from mailhaul.domain.errors import NotFound
from mailhaul.domain.ports import MailSink
from mailhaul.services.whole_delivery import deliver_whole

if TYPE_CHECKING:
    from mailhaul.services.account_access import AccountAccess


class QuarantineService:
    """Quarantined messages (unscoped: the CLI's; the web and API scope by account)."""

    def __init__(
        self,
        db: Database,
        accounts: AccountStore,
        box: QuarantineBox,
        sink: Callable[[], MailSink],
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.rows = QuarantineRows()
        self.box = box
        self._sink = sink

    def listed(self, account_ids: Collection[int] | None) -> list[QuarantinedMessage]:
        """The newest quarantined messages of these accounts (None: all)."""
        with self.db.begin() as conn:
            return self.rows.listed(conn, account_ids)

    def get(self, message_id: int) -> QuarantinedMessage:
        """One entry; NotFound if there is none."""
        with self.db.begin() as conn:
            return self.rows.get(conn, message_id)

    def read(self, message_id: int) -> Iterator[bytes]:
        """The quarantined message as kept (mailhaul's Received line on top), in blocks."""
        entry = self.get(message_id)
        return self.box.read(entry.account_id, entry.name)

    def release(self, message_id: int) -> QuarantinedMessage:
        """Deliver the message into its account's mailbox, then forget it."""
        entry = self.get(message_id)
        with self.db.begin() as conn:
            destination = self.accounts.get(conn, entry.account_id).spec.destination
        blocks = self.box.read(entry.account_id, entry.name)
        session = self._sink().open_session(str(entry.account_id))
        try:
            deliver_whole(session, destination, None, blocks)
            session.flush()
        finally:
            session.close()
        self._forget(entry)
        return entry

    def delete(self, message_id: int) -> QuarantinedMessage:
        """Delete the message for good."""
        entry = self.get(message_id)
        self._forget(entry)
        return entry

    def _forget(self, entry: QuarantinedMessage) -> None:
        with self.db.begin() as conn:
            self.rows.remove(conn, entry.id)
        self.box.remove(entry.account_id, entry.name)


class QuarantineAccess:
    """The quarantine scoped to an actor: an account's entries for whoever may see the
    account (its owner, its domain's admins, admins); anything else is NotFound."""

    def __init__(self, quarantine: QuarantineService, accounts: AccountAccess) -> None:
        self.quarantine = quarantine
        self.accounts = accounts

    def listed(self, actor: Principal, account_id: int) -> list[QuarantinedMessage]:
        """The account's quarantined messages, newest first."""
        self.accounts.get(actor, account_id)
        return self.quarantine.listed([account_id])

    def release(self, actor: Principal, account_id: int, message_id: int) -> QuarantinedMessage:
        """Deliver one of the account's quarantined messages into its mailbox."""
        self._entry(actor, account_id, message_id)
        return self.quarantine.release(message_id)

    def delete(self, actor: Principal, account_id: int, message_id: int) -> QuarantinedMessage:
        """Delete one of the account's quarantined messages for good."""
        self._entry(actor, account_id, message_id)
        return self.quarantine.delete(message_id)

    def _entry(self, actor: Principal, account_id: int, message_id: int) -> QuarantinedMessage:
        self.accounts.get(actor, account_id)
        entry = self.quarantine.get(message_id)
        if entry.account_id != account_id:
            raise NotFound(f"no quarantined message {message_id}")
        return entry
