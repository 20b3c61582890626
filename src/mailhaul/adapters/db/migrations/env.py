"""Alembic environment: runs on the connection `Database.upgrade()` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from mailhaul.adapters.db.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError("mailhaul migrations run through Database.upgrade() or `mailhaul db`")
_run(_connection)
