"""Leasing due accounts (`AccountStore.claim_due`, `claim`) on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import update

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.tables import accounts
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.services.leases import Leases

NOW = 1_000_000.0
TTL = 300.0
store = AccountStore()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def add(db: Database, **state: Any) -> int:
    """An account due since NOW - 10, with ``state`` columns set directly."""
    spec = AccountSpec(
        owner="o@example.org",
        protocol=Protocol.POP3,
        host="mail.example.net",
        port=995,
        security=Security.SSL,
        username="u",
    )
    with db.begin() as conn:
        account_id = store.add(conn, spec, NOW - 10)
        if state:
            conn.execute(update(accounts).where(accounts.c.id == account_id).values(**state))
    return account_id


def claim_due(db: Database, owner: str, limit: int, now: float = NOW) -> list[int]:
    with db.begin() as conn:
        return store.claim_due(conn, owner, now, TTL, limit)


def holders(db: Database) -> dict[int, str | None]:
    with db.begin() as conn:
        return {row.id: row.lease_owner for row in conn.execute(accounts.select())}


def test_claim_due_takes_due_accounts_requested_first(db: Database):
    later = add(db, next_poll_at=NOW - 5)
    earlier = add(db, next_poll_at=NOW - 50)
    requested = add(db, next_poll_at=NOW + 900, fetch_requested_at=NOW - 1)
    expired = add(db, next_poll_at=NOW - 1, lease_owner="gone:1:x", lease_expires=NOW - 1)
    add(db, next_poll_at=NOW + 60)  # not due yet
    add(db, active=False)
    add(db, paused_reason="login failed 5 times")
    add(db, paused_reason="paused", fetch_requested_at=NOW)  # paused beats "fetch now"
    add(db, lease_owner="busy:1:x", lease_expires=NOW + 100)  # held by a live worker
    add(db, lease_owner="busy:1:x", lease_expires=NOW + 100, fetch_requested_at=NOW)

    assert claim_due(db, "w1", limit=3) == [requested, earlier, later]
    assert claim_due(db, "w2", limit=10) == [expired]
    assert claim_due(db, "w3", limit=10) == []
    leased = holders(db)
    assert [leased[i] for i in (requested, earlier, later, expired)] == ["w1", "w1", "w1", "w2"]
    with db.begin() as conn:
        row = conn.execute(accounts.select().where(accounts.c.id == expired)).one()
    assert row.lease_expires == NOW + TTL


def test_claim_due_takes_over_dead_holders_and_expired_leases(db: Database):
    dead = add(db, lease_owner="here:99:x", lease_expires=NOW + 100)
    add(db, lease_owner="alive:1:x", lease_expires=NOW + 100)
    with db.begin() as conn:
        assert store.claim_due(conn, "w", NOW, TTL, 10, steal_from={"here:99:x"}) == [dead]
    assert claim_due(db, "w2", limit=10, now=NOW + 200) != []  # both leases expired by then


def test_dead_local_holders_are_the_unexpired_leases_of_gone_processes_on_this_host(
    db: Database,
):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is free now (and not reused within this test, in practice)
    host = socket.gethostname()
    dead = f"{host}:{gone.pid}:x"
    add(db, lease_owner=dead, lease_expires=NOW + 100)
    add(db, lease_owner=dead, lease_expires=NOW + 100)
    add(db, lease_owner=f"{host}:{gone.pid}:y", lease_expires=NOW - 1)  # expired: free anyway
    add(db, lease_owner=f"{host}:{os.getppid()}:x", lease_expires=NOW + 100)  # alive
    add(db, lease_owner=f"{host}:{os.getpid()}:x", lease_expires=NOW + 100)  # this process
    add(db, lease_owner=f"elsewhere-{host}:{gone.pid}:x", lease_expires=NOW + 100)
    leases = Leases(db, store)
    with db.begin() as conn:
        assert leases.dead_local_holders(conn, NOW) == [dead]


def test_claim_due_with_no_room_claims_nothing(db: Database):
    due = add(db)
    assert claim_due(db, "w", limit=0) == []
    assert set(holders(db).values()) == {None}
    assert claim_due(db, "w", limit=1) == [due]  # positive control: it was due


def test_workers_claiming_at_once_never_share_an_account(db: Database):
    ids = {add(db, next_poll_at=NOW - n) for n in range(24)}
    got: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        start.wait()
        mine: list[int] = []
        while batch := claim_due(db, name, limit=2):
            mine += batch
        got[name] = mine

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, ["a", "b", "c", "d"]))
    claimed = [i for batch in got.values() for i in batch]
    assert sorted(claimed) == sorted(ids)  # each exactly once
    leased = holders(db)
    assert all(leased[i] == name for name, batch in got.items() for i in batch)


# SQLite serialises writers with BEGIN IMMEDIATE: two claims never overlap there.
@pytest.mark.databases("postgresql")
def test_postgresql_skips_accounts_another_transaction_is_claiming(db: Database):
    ids = [add(db, next_poll_at=NOW - n) for n in range(4)]
    with db.begin() as first:
        mine = store.claim_due(first, "first", NOW, TTL, 2)
        assert mine == [ids[3], ids[2]]
        # Uncommitted: the rows still look free, but they are locked; the second worker
        # does not wait for them and does not get them.
        with db.begin() as second:
            second.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            theirs = store.claim_due(second, "second", NOW, TTL, 10)
    assert theirs == [ids[1], ids[0]]
    assert claim_due(db, "third", limit=10) == []
    assert holders(db) == {ids[0]: "second", ids[1]: "second", ids[2]: "first", ids[3]: "first"}


@pytest.mark.databases("postgresql")
def test_postgresql_claim_waits_for_a_concurrent_claim_and_sees_its_lease(db: Database):
    account = add(db)
    with db.begin() as first:
        assert store.claim(first, account, "first", NOW, TTL)
        done = threading.Event()
        result: list[bool] = []

        def second() -> None:  # blocks on the row lock until `first` commits, then re-checks
            with db.begin() as conn:
                result.append(store.claim(conn, account, "second", NOW, TTL))
            done.set()

        thread = threading.Thread(target=second)
        thread.start()
        assert not done.wait(0.3)
    thread.join(10)
    assert result == [False]
    assert holders(db)[account] == "first"


def test_claim_due_without_requests_takes_only_accounts_due_by_time(db: Database):
    due = add(db, next_poll_at=NOW - 5)
    asked = add(db, next_poll_at=NOW + 900, fetch_requested_at=NOW - 1)
    asked_and_due = add(db, next_poll_at=NOW - 50, fetch_requested_at=NOW - 1)
    never_scheduled = add(db, next_poll_at=None)
    add(db, next_poll_at=None, paused_reason="paused")
    with db.begin() as conn:
        got = store.claim_due(conn, "w", NOW, TTL, 10, requested=False)
    assert got == [asked_and_due, due]  # by next poll time; a claim clears the request
    # The next look for requests finds the rest, never-scheduled accounts first.
    assert claim_due(db, "w2", limit=10) == [never_scheduled, asked]
    with db.begin() as conn:
        rows = {r.id: r.fetch_requested_at for r in conn.execute(accounts.select())}
    assert rows[asked] is None and rows[asked_and_due] is None
