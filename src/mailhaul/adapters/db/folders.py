"""What mailhaul remembers of each source folder: its UIDVALIDITY, and its state when a poll
last found nothing to do there (``domain.quiet``)."""

from __future__ import annotations

import dataclasses
import json

from sqlalchemy import Connection, insert, select, update

from mailhaul.adapters.db.tables import folders
from mailhaul.domain.messages import FolderState
from mailhaul.domain.quiet import QuietFolder


class FolderRecords:
    """The ``folders`` table: one row per account and folder."""

    def folder_uidvalidity(self, conn: Connection, account_id: int, folder: str) -> int | None:
        """The UIDVALIDITY last seen for a folder, or None the first time."""
        value = conn.scalar(
            select(folders.c.uidvalidity).where(
                folders.c.account_id == account_id, folders.c.folder == folder
            )
        )
        return None if value is None else int(value)

    def folder_record(
        self, conn: Connection, account_id: int, folder: str
    ) -> tuple[int | None, QuietFolder | None]:
        """The folder's UIDVALIDITY (None the first time) and its quiet state, if any."""
        row = conn.execute(
            select(folders.c.uidvalidity, folders.c.quiet).where(
                folders.c.account_id == account_id, folders.c.folder == folder
            )
        ).first()
        if row is None:
            return None, None
        return int(row.uidvalidity), _quiet_from_json(row.quiet)

    def set_quiet(
        self, conn: Connection, account_id: int, folder: str, quiet: QuietFolder | None
    ) -> None:
        """Record (or with None forget) the state in which the folder had nothing to do."""
        conn.execute(
            update(folders)
            .where(folders.c.account_id == account_id, folders.c.folder == folder)
            .values(quiet=None if quiet is None else _quiet_to_json(quiet))
        )

    def set_folder_uidvalidity(
        self, conn: Connection, account_id: int, folder: str, uidvalidity: int
    ) -> None:
        """Remember a folder's UIDVALIDITY."""
        changed = conn.execute(
            update(folders)
            .where(folders.c.account_id == account_id, folders.c.folder == folder)
            .values(uidvalidity=uidvalidity)
        )
        if changed.rowcount == 0:
            conn.execute(
                insert(folders).values(
                    account_id=account_id, folder=folder, uidvalidity=uidvalidity
                )
            )

    def folder_uidvalidities(self, conn: Connection, account_id: int) -> dict[str, int]:
        """Every folder's remembered UIDVALIDITY, for export."""
        rows = conn.execute(
            select(folders.c.folder, folders.c.uidvalidity)
            .where(folders.c.account_id == account_id)
            .order_by(folders.c.folder)
        )
        return {row.folder: int(row.uidvalidity) for row in rows}


__all__ = ["FolderRecords"]


def _quiet_to_json(quiet: QuietFolder) -> str:
    return json.dumps(
        {
            **dataclasses.asdict(quiet.state),
            "options": quiet.options_key,
            "listed_at": quiet.listed_at,
        }
    )


def _quiet_from_json(text: str | None) -> QuietFolder | None:
    """The stored state, or None if there is none or it cannot be read (a full listing
    then follows: this is a cache, never the record of what was delivered)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        state = FolderState(
            int(data["uidvalidity"]),
            int(data["uidnext"]),
            int(data["messages"]),
            int(data["unseen"]),
        )
        return QuietFolder(state, str(data["options"]), float(data["listed_at"]))
    except (ValueError, TypeError, KeyError):
        return None
