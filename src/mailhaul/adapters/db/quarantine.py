"""The quarantine's rows: one per infected message kept in ``{home}/quarantine``."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from mailhaul.adapters.db.tables import accounts, quarantine
from mailhaul.domain.errors import NotFound


@dataclass(frozen=True)
class QuarantinedMessage:
    """One quarantined message, as listed."""

    id: int
    account_id: int
    name: str  # its file in the account's quarantine Maildir
    folder: str
    uid: str
    signature: str
    scanner: str
    size: int
    sender: str
    subject: str
    created_at: float
    owner: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (not the file name)."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "owner": self.owner,
            "folder": self.folder,
            "uid": self.uid,
            "signature": self.signature,
            "scanner": self.scanner,
            "size": self.size,
            "sender": self.sender,
            "subject": self.subject,
            "created_at": self.created_at,
        }


def _message(row: Any) -> QuarantinedMessage:
    return QuarantinedMessage(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        folder=row.folder,
        uid=row.uid,
        signature=row.signature,
        scanner=row.scanner,
        size=row.size,
        sender=row.sender,
        subject=row.subject,
        created_at=row.created_at,
        owner=row.owner,
    )


class QuarantineRows:
    """Quarantine rows; every method runs inside the caller's transaction."""

    def add(self, conn: Connection, message: QuarantinedMessage) -> int:
        """Record a quarantined message; its id."""
        values = message.as_dict()
        del values["id"], values["owner"]
        result = conn.execute(insert(quarantine).values(**values, name=message.name))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def listed(
        self, conn: Connection, account_ids: Collection[int] | None, limit: int = 500
    ) -> list[QuarantinedMessage]:
        """The newest quarantined messages of these accounts (None: of all)."""
        query = select(quarantine, accounts.c.owner).join(
            accounts, accounts.c.id == quarantine.c.account_id
        )
        if account_ids is not None:
            query = query.where(quarantine.c.account_id.in_(list(account_ids)))
        rows = conn.execute(query.order_by(quarantine.c.id.desc()).limit(limit)).all()
        return [_message(row) for row in rows]

    def get(self, conn: Connection, message_id: int) -> QuarantinedMessage:
        """One quarantined message; NotFound if there is none."""
        row = conn.execute(
            select(quarantine, accounts.c.owner)
            .join(accounts, accounts.c.id == quarantine.c.account_id)
            .where(quarantine.c.id == message_id)
        ).first()
        if row is None:
            raise NotFound(f"no quarantined message {message_id}")
        return _message(row)

    def remove(self, conn: Connection, message_id: int) -> None:
        """Forget a quarantined message."""
        conn.execute(delete(quarantine).where(quarantine.c.id == message_id))
