"""The settings an admin changed (web UI, API, `mailhaul settings`): one JSON value a key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, inspect, select, text, update

from mailhaul.adapters.db.tables import settings
from mailhaul.domain.errors import ConfigError

# pg_advisory_xact_lock key: two admins saving at once change the settings one after the other.
_PG_LOCK_KEY = 0x6D68736574  # "mhset"


@dataclass(frozen=True)
class StoredSetting:
    """One stored value, with who changed it last and when."""

    key: str
    value: Any
    updated_at: float
    updated_by: str


class StoredSettingsStore:
    """Rows of the ``settings`` table (SQLAlchemy Core; SQLite and PostgreSQL)."""

    def lock(self, conn: Connection) -> None:
        """Hold the settings for this transaction (PostgreSQL; SQLite writers take turns)."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})

    def exists(self, conn: Connection) -> bool:
        """Whether the table is there (a database before revision 0003 stores no settings)."""
        return inspect(conn).has_table(settings.name)

    def all(self, conn: Connection) -> dict[str, StoredSetting]:
        """Every stored setting by key."""
        rows = conn.execute(select(settings).order_by(settings.c.key)).all()
        found: dict[str, StoredSetting] = {}
        for row in rows:
            try:
                value = json.loads(row.value)
            except ValueError:
                raise ConfigError(
                    f"the stored setting {row.key} is not JSON: "
                    f"remove it with `mailhaul settings unset {row.key}`"
                ) from None
            found[row.key] = StoredSetting(row.key, value, row.updated_at, row.updated_by)
        return found

    def values(self, conn: Connection) -> dict[str, Any]:
        """Every stored value by key."""
        return {key: stored.value for key, stored in self.all(conn).items()}

    def put(self, conn: Connection, key: str, value: Any, now: float, by: str) -> None:
        """Store ``value`` (as JSON) under ``key``."""
        row = {"value": json.dumps(value, sort_keys=True), "updated_at": now, "updated_by": by}
        changed = conn.execute(update(settings).where(settings.c.key == key).values(**row))
        if changed.rowcount == 0:
            conn.execute(insert(settings).values(key=key, **row))

    def remove(self, conn: Connection, key: str) -> bool:
        """Forget ``key`` (the file's value or the default applies again); whether it was set."""
        return bool(conn.execute(delete(settings).where(settings.c.key == key)).rowcount)
