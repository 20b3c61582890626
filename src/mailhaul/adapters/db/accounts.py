"""Stored accounts: CRUD, encrypted passwords, leases and service state."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from mailhaul.adapters.db.account_rows import READ, account_from_row, spec_values
from mailhaul.adapters.db.tables import accounts
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.errors import NotFound
from mailhaul.domain.limits import DAILY_LIMIT_STATE


class AccountStore:
    """Account rows; every method runs inside the caller's transaction."""

    def add(self, conn: Connection, spec: AccountSpec, now: float) -> int:
        """Insert an account (password set separately, once the id is known)."""
        result = conn.execute(
            insert(accounts).values(
                **spec_values(spec),
                password_enc="",
                created_at=now,
                updated_at=now,
                state="new",
                next_poll_at=now,
                consecutive_failures=0,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def update_spec(self, conn: Connection, account_id: int, spec: AccountSpec, now: float) -> None:
        """Replace an account's settings; a paused/failed account gets a fresh start."""
        self._must_update(
            conn,
            account_id,
            **spec_values(spec),
            updated_at=now,
            consecutive_failures=0,
            next_poll_at=now,
            paused_reason=None,
        )

    def set_password(self, conn: Connection, account_id: int, token: str) -> None:
        """Store an encrypted password."""
        self._must_update(conn, account_id, password_enc=token)

    def password_token(self, conn: Connection, account_id: int) -> str:
        """The encrypted password of an account."""
        token = conn.scalar(select(accounts.c.password_enc).where(accounts.c.id == account_id))
        if token is None:
            raise NotFound(f"account {account_id} does not exist")
        return str(token)

    def all_password_tokens(self, conn: Connection) -> list[tuple[int, str]]:
        """Every account's id and encrypted password (for key rotation)."""
        rows = conn.execute(select(accounts.c.id, accounts.c.password_enc))
        return [(row.id, row.password_enc) for row in rows]

    def get(self, conn: Connection, account_id: int) -> Account:
        """One account, or NotFound."""
        row = conn.execute(select(*READ).where(accounts.c.id == account_id)).first()
        if row is None:
            raise NotFound(f"account {account_id} does not exist")
        return account_from_row(row)

    def list_all(self, conn: Connection, ids: Sequence[int] | None = None) -> list[Account]:
        """All accounts (or those with ``ids``), by id."""
        query = select(*READ).order_by(accounts.c.id)
        if ids is not None:
            query = query.where(accounts.c.id.in_(list(ids)))
        return [account_from_row(row) for row in conn.execute(query)]

    def delete(self, conn: Connection, account_id: int) -> None:
        """Delete an account with its records and runs."""
        result = conn.execute(delete(accounts).where(accounts.c.id == account_id))
        if result.rowcount == 0:
            raise NotFound(f"account {account_id} does not exist")

    def set_active(self, conn: Connection, account_id: int, active: bool, now: float) -> None:
        """Enable (due now, failures forgiven) or disable an account."""
        values: dict[str, Any] = {"active": active, "updated_at": now}
        if active:
            values |= {"next_poll_at": now, "consecutive_failures": 0, "paused_reason": None}
        self._must_update(conn, account_id, **values)

    def resume(self, conn: Connection, account_id: int, now: float) -> None:
        """Unpause an account: due now, failures forgiven (``active`` stays as it is)."""
        self._must_update(
            conn,
            account_id,
            paused_reason=None,
            consecutive_failures=0,
            next_poll_at=now,
            updated_at=now,
        )

    def next_due_at(self, conn: Connection) -> float | None:
        """The earliest next-poll time of any active account."""
        query = select(accounts.c.next_poll_at).where(accounts.c.active.is_(True))
        query = query.order_by(accounts.c.next_poll_at).limit(1)
        value = conn.scalar(query)
        return None if value is None else float(value)

    # leases --------------------------------------------------------------------------------
    def lease_holder(self, conn: Connection, account_id: int) -> tuple[str | None, float | None]:
        """Who holds the account's lease, and until when."""
        row = conn.execute(
            select(accounts.c.lease_owner, accounts.c.lease_expires).where(
                accounts.c.id == account_id
            )
        ).first()
        if row is None:
            raise NotFound(f"account {account_id} does not exist")
        return row.lease_owner, row.lease_expires

    def live_lease_holders(self, conn: Connection, now: float, prefix: str) -> list[str]:
        """The distinct owners of unexpired leases whose name starts with ``prefix``."""
        c = accounts.c
        query = select(c.lease_owner).distinct()
        query = query.where(c.lease_owner.startswith(prefix, autoescape=True))
        return [str(owner) for owner in conn.scalars(query.where(c.lease_expires >= now))]

    def claim(
        self,
        conn: Connection,
        account_id: int,
        owner: str,
        now: float,
        ttl: float,
        steal_from: str | None = None,
    ) -> bool:
        """Take the lease if it is free, expired, or held by ``steal_from`` (a dead process)."""
        free = or_(accounts.c.lease_owner.is_(None), accounts.c.lease_expires < now)
        if steal_from is not None:
            free = or_(free, accounts.c.lease_owner == steal_from)
        result = conn.execute(
            update(accounts)
            .where(and_(accounts.c.id == account_id, free))
            .values(lease_owner=owner, lease_expires=now + ttl, fetch_requested_at=None)
        )
        return result.rowcount == 1

    def claim_due(
        self,
        conn: Connection,
        owner: str,
        now: float,
        ttl: float,
        limit: int,
        *,
        steal_from: Collection[str] = (),
        exclude_hosts: Collection[str] = (),
        requested: bool = True,
    ) -> list[int]:
        """Lease up to ``limit`` due accounts at once; their ids, requested fetches first.

        Due: active, not paused, lease free or expired (or held by one of ``steal_from``,
        dead processes), and its next poll is due or a fetch was requested. Two workers
        calling this at the same time never get the same account: PostgreSQL locks the
        candidates with ``FOR UPDATE SKIP LOCKED`` (others skip them); SQLite holds the
        database's write lock from ``BEGIN IMMEDIATE`` and each UPDATE re-checks the lease.
        Accounts on ``exclude_hosts`` (source hosts at their limit) are left for later. A
        claim clears the account's "fetch now" request: the run it asked for is starting
        (who asked stays until ``take_triggers`` reads it, in the same transaction).

        The accounts due by time are found through the index on (active, next_poll_at),
        reading only the due ones; "fetch now" requests (and accounts never scheduled)
        cost a scan of every account, so ``requested=False`` leaves them out: the scheduler
        looks for them about once a second, not at every claim (with 10,000 accounts the
        scan was most of the cost of a claim).
        """
        if limit <= 0:
            return []
        c = accounts.c
        free = or_(c.lease_owner.is_(None), c.lease_expires < now)
        if steal_from:
            free = or_(free, c.lease_owner.in_(list(steal_from)))
        others = and_(
            c.paused_reason.is_(None),
            c.sign_in_problem.is_(None),
            c.host.not_in(list(exclude_hosts)) if exclude_hosts else true(),
            free,
        )
        queries = []
        timed = others
        if requested:
            # Requests (and accounts never scheduled) have no index: a plain scan, ordered
            # like the rest (`active IS NOT false` keeps SQLite off the (active, next_poll_at)
            # index, through which it would visit every row).
            special = or_(c.fetch_requested_at.is_not(None), c.next_poll_at.is_(None))
            query = select(c.id).where(special, c.active.is_not(False), others)
            queries.append(query.order_by(c.next_poll_at.asc().nulls_first(), c.id))
            timed = and_(others, c.fetch_requested_at.is_(None))  # not twice
        # Due by time: a range of the index, read in its order and no further than needed.
        # Nothing more in ORDER BY: PostgreSQL keeps NULLs last in the index (NULLS FIRST
        # would sort every due row), and a tie-break column would make it sort every row of
        # an equal next_poll_at (10,000 accounts made due by one UPDATE) on each claim.
        by_time = select(c.id).where(c.active.is_(True), c.next_poll_at <= now, timed)
        queries.append(by_time.order_by(c.next_poll_at))
        due = and_(
            c.active.is_(True),
            others,
            or_(c.next_poll_at.is_(None), c.next_poll_at <= now, c.fetch_requested_at.is_not(None)),
        )
        lease = {
            "lease_owner": owner,
            "lease_expires": now + ttl,
            "fetch_requested_at": None,
            # who asked, for ``take_triggers``; forgotten when nobody asks now (a request a
            # poll outside the scheduler answered: `claim` leaves the column alone)
            "fetch_requested_by": case(
                (c.fetch_requested_at.is_(None), None), else_=c.fetch_requested_by
            ),
        }
        postgres = conn.dialect.name == "postgresql"
        ids: list[int] = []
        for query in queries:
            if len(ids) >= limit:
                break
            query = query.limit(limit - len(ids))
            if postgres:
                query = query.with_for_update(skip_locked=True)
            ids += [int(i) for i in conn.scalars(query)]
        if postgres:
            if ids:
                conn.execute(update(accounts).where(c.id.in_(ids)).values(**lease))
            return ids
        claimed: list[int] = []
        for account_id in ids:
            taken = conn.execute(update(accounts).where(c.id == account_id, due).values(**lease))
            if taken.rowcount == 1:
                claimed.append(account_id)
        return claimed

    def mailboxes_of(
        self, conn: Connection, ids: Collection[int]
    ) -> dict[int, tuple[str, str, str]]:
        """The remote mailbox of each account: (protocol, source host, user name),
        lower-case."""
        if not ids:
            return {}
        c = accounts.c
        rows = conn.execute(select(c.id, c.protocol, c.host, c.username).where(c.id.in_(ids)))
        return {
            int(row.id): (row.protocol.lower(), row.host.lower(), row.username.lower())
            for row in rows
        }

    def renew(self, conn: Connection, account_id: int, owner: str, now: float, ttl: float) -> bool:
        """Extend a lease we hold; False if it was lost."""
        result = conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id, accounts.c.lease_owner == owner)
            .values(lease_expires=now + ttl)
        )
        return result.rowcount == 1

    def finish(
        self,
        conn: Connection,
        account_id: int,
        owner: str,
        *,
        state: str,
        result: str,
        error: str | None,
        finished_at: float,
        next_poll_at: float,
        consecutive_failures: int,
        paused_reason: str | None = None,
    ) -> None:
        """Record a run's outcome on the account and release the lease."""
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id, accounts.c.lease_owner == owner)
            .values(
                state=state,
                last_result=result,
                last_error=error,
                last_run_at=finished_at,
                next_poll_at=next_poll_at,
                consecutive_failures=consecutive_failures,
                paused_reason=paused_reason,
                lease_owner=None,
                lease_expires=None,
            )
        )

    def take_triggers(self, conn: Connection, ids: Collection[int]) -> dict[int, str]:
        """Who asked for a fetch of each of ``ids`` (just claimed), and forget it: accounts
        nobody asked for are left out (their run is the schedule's)."""
        if not ids:
            return {}
        c = accounts.c
        asked = and_(c.id.in_(list(ids)), c.fetch_requested_by.is_not(None))
        rows = conn.execute(select(c.id, c.fetch_requested_by).where(asked)).all()
        if rows:
            conn.execute(update(accounts).where(asked).values(fetch_requested_by=None))
        return {int(row.id): str(row.fetch_requested_by) for row in rows}

    def request_fetch(self, conn: Connection, account_id: int, now: float, by: str) -> None:
        """Put the account at the head of the queue ("fetch now"), asked for ``by`` (a
        trigger)."""
        self._must_update(conn, account_id, fetch_requested_at=now, fetch_requested_by=by)

    def budget_spent(self, conn: Connection, account_id: int, now: float) -> bool:
        """Whether the account waits for its daily download budget (state ``daily limit``
        with its next poll still ahead)."""
        c = accounts.c
        found = conn.execute(
            select(c.id).where(
                c.id == account_id, c.state == DAILY_LIMIT_STATE, c.next_poll_at > now
            )
        ).first()
        return found is not None

    def request_due(
        self,
        conn: Connection,
        now: float,
        owner: str | None = None,
        domains: Collection[str] | None = None,
        by: str = "cron",
    ) -> int:
        """Request a fetch of every due account (of ``owner`` / in ``domains``); how many.

        Due: active, not paused, signed in, not running, next poll at or before ``now``.
        Accounts with a fetch already requested are left as they are (and not counted).
        """
        c = accounts.c
        conditions = [
            c.active.is_(True),
            c.paused_reason.is_(None),
            c.sign_in_problem.is_(None),
            c.fetch_requested_at.is_(None),
            or_(c.next_poll_at.is_(None), c.next_poll_at <= now),
            or_(c.lease_owner.is_(None), c.lease_expires < now),
        ]
        if owner is not None:
            conditions.append(func.lower(c.owner) == owner.lower())
        if domains is not None:
            conditions.append(c.owner_domain.in_(sorted(domains)))
        values = {"fetch_requested_at": now, "fetch_requested_by": by}
        result = conn.execute(update(accounts).where(*conditions).values(**values))
        return int(result.rowcount)

    def release(self, conn: Connection, account_id: int, owner: str) -> None:
        """Drop a lease we hold."""
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id, accounts.c.lease_owner == owner)
            .values(lease_owner=None, lease_expires=None)
        )

    def give_back(self, conn: Connection, account_id: int, owner: str, now: float) -> None:
        """Drop a lease ``claim_due`` just gave, without polling (a limit said wait): a
        "fetch now" the claim took is asked for again (who asked is still on the row)."""
        c = accounts.c
        asked_again = case((c.fetch_requested_by.is_not(None), now), else_=c.fetch_requested_at)
        conn.execute(
            update(accounts)
            .where(c.id == account_id, c.lease_owner == owner)
            .values(lease_owner=None, lease_expires=None, fetch_requested_at=asked_again)
        )

    def _must_update(self, conn: Connection, account_id: int, **values: Any) -> None:
        result = conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
        if result.rowcount == 0:
            raise NotFound(f"account {account_id} does not exist")
