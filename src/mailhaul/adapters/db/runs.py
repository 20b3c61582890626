"""Run history: one row per poll of an account, with its log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, not_, select, update

from mailhaul.adapters.db.tables import runs
from mailhaul.domain.scheduling import RunResult


@dataclass(frozen=True)
class RunRecord:
    """One poll of one account."""

    id: int
    account_id: int
    trigger: str
    started_at: float
    finished_at: float | None
    result: RunResult
    fetched: int
    bytes: int
    deleted: int
    skipped: int
    error: str | None
    log: str = ""  # empty where only the counts were read
    spam: int = 0  # what the filter stage found
    viruses: int = 0
    unscanned: int = 0


def run_record(row: Any) -> RunRecord:
    """A ``runs`` row as a RunRecord (its log only if the query selected it)."""
    mapping = row._mapping
    return RunRecord(
        id=row.id,
        account_id=row.account_id,
        trigger=row.trigger,
        started_at=row.started_at,
        finished_at=row.finished_at,
        result=RunResult(row.result),
        fetched=row.fetched,
        bytes=row.bytes,
        deleted=row.deleted,
        skipped=row.skipped,
        error=row.error,
        log=mapping.get("log", ""),
        spam=mapping.get("spam", 0),
        viruses=mapping.get("viruses", 0),
        unscanned=mapping.get("unscanned", 0),
    )


class RunStore:
    """Run rows; every method runs inside the caller's transaction."""

    def start(self, conn: Connection, account_id: int, trigger: str, now: float) -> int:
        """Open a run (result ``running``)."""
        result = conn.execute(
            insert(runs).values(
                account_id=account_id,
                trigger=trigger,
                started_at=now,
                result=RunResult.RUNNING,
                log="",
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def interrupt_stale(self, conn: Connection, account_id: int, now: float) -> int:
        """Close runs a dead process left ``running``; returns how many."""
        result = conn.execute(
            update(runs)
            .where(runs.c.account_id == account_id, runs.c.result == RunResult.RUNNING)
            .values(
                result=RunResult.INTERRUPTED,
                finished_at=now,
                error="the process running this poll stopped before it finished",
            )
        )
        return int(result.rowcount)

    def progress(self, conn: Connection, run_id: int, fetched: int, size: int) -> None:
        """Show a running run's counts so far (any process's web page or CLI reads them)."""
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.result == RunResult.RUNNING)
            .values(fetched=fetched, bytes=size)
        )

    def finish(
        self,
        conn: Connection,
        run_id: int,
        *,
        result: str,
        finished_at: float,
        fetched: int,
        size: int,
        deleted: int,
        skipped: int,
        error: str | None,
        log: str,
        filtered: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        """Close a run with its counts and log; ``filtered``: (spam, viruses, unscanned)."""
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                result=result,
                finished_at=finished_at,
                fetched=fetched,
                bytes=size,
                deleted=deleted,
                skipped=skipped,
                spam=filtered[0],
                viruses=filtered[1],
                unscanned=filtered[2],
                error=error,
                log=log,
            )
        )

    def downloads_since(
        self, conn: Connection, account_id: int, since: float
    ) -> list[tuple[float, int]]:
        """(when, bytes) of the account's runs that downloaded after ``since`` (a run in
        progress or interrupted counts at its start, with the bytes it had reported): what
        a daily download budget is measured against."""
        at = func.coalesce(runs.c.finished_at, runs.c.started_at)
        rows = conn.execute(
            select(at, runs.c.bytes).where(
                runs.c.account_id == account_id, at > since, runs.c.bytes > 0
            )
        )
        return [(float(when), int(size)) for when, size in rows]

    def prune(self, conn: Connection, older_than: float) -> int:
        """Delete finished runs started before ``older_than``; returns how many.

        Each account's newest finished run is kept whatever its age, so "last run log"
        never goes blank; ``running`` runs are never deleted.
        """
        newest = (
            select(func.max(runs.c.id))
            .where(runs.c.result != RunResult.RUNNING)
            .group_by(runs.c.account_id)
            .scalar_subquery()
        )
        result = conn.execute(
            delete(runs).where(
                runs.c.started_at < older_than,
                runs.c.result != RunResult.RUNNING,
                runs.c.id.not_in(newest),
            )
        )
        return int(result.rowcount)

    def history(
        self,
        conn: Connection,
        account_id: int,
        limit: int = 50,
        before: int | None = None,
        hide_empty: bool = False,
    ) -> list[RunRecord]:
        """The account's runs, newest first: up to ``limit`` older than run ``before``
        (None: from the newest), without the runs that found nothing when ``hide_empty``
        (finished ok, nothing fetched, deleted or skipped)."""
        c = runs.c
        query = select(runs).where(c.account_id == account_id)
        if before is not None:
            query = query.where(c.id < before)
        if hide_empty:
            empty = and_(c.result == RunResult.OK, c.fetched == 0, c.deleted == 0, c.skipped == 0)
            query = query.where(not_(empty))
        rows = conn.execute(query.order_by(c.id.desc()).limit(limit))
        return [run_record(r) for r in rows]

    def one(self, conn: Connection, account_id: int, run_id: int) -> RunRecord | None:
        """One run of the account, with its log."""
        row = conn.execute(
            select(runs).where(runs.c.account_id == account_id, runs.c.id == run_id)
        ).first()
        return None if row is None else run_record(row)
