"""Processes running the scheduler, with heartbeats (for status and "fetch now")."""

from __future__ import annotations

import os
import socket

from sqlalchemy import Connection, delete, func, insert, select, update

from mailhaul.adapters.db.tables import workers

HEARTBEAT_EVERY = 5.0
ALIVE_WITHIN = 20.0


class WorkerStore:
    """Rows of the ``workers`` table; every method runs in the caller's transaction."""

    def register(self, conn: Connection, worker_id: str, now: float) -> None:
        """Add this process."""
        conn.execute(
            insert(workers).values(
                id=worker_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
                running=0,
            )
        )

    def heartbeat(self, conn: Connection, worker_id: str, now: float, running: int) -> None:
        """Say this process is alive and how many polls it runs."""
        conn.execute(
            update(workers)
            .where(workers.c.id == worker_id)
            .values(heartbeat_at=now, running=running)
        )

    def unregister(self, conn: Connection, worker_id: str) -> None:
        """Remove this process (clean stop)."""
        conn.execute(delete(workers).where(workers.c.id == worker_id))

    def forget_dead(self, conn: Connection, now: float, older_than: float = 3600.0) -> None:
        """Drop rows of processes that stopped beating long ago (killed, rebooted)."""
        conn.execute(delete(workers).where(workers.c.heartbeat_at < now - older_than))

    def alive(self, conn: Connection, now: float, within: float = ALIVE_WITHIN) -> int:
        """How many scheduler processes beat recently."""
        count = conn.scalar(
            select(func.count()).select_from(workers).where(workers.c.heartbeat_at >= now - within)
        )
        return int(count or 0)
