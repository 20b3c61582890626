"""Leases: one run per account at a time, across processes and machines."""

from __future__ import annotations

import os
import secrets
import socket
import time

from sqlalchemy import Connection

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.domain.errors import AccountBusy

LEASE_TTL = 300.0
_HOST = socket.gethostname()


def new_owner() -> str:
    """A lease-owner id naming this host and process: ``host:pid:random``."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_local_owner(owner: str | None) -> bool:
    """Whether ``owner`` (``host:pid:random``) was a process on this host that is gone."""
    return _dead_local_owner(owner)


def _dead_local_owner(owner: str | None) -> bool:
    """Whether ``owner`` was a process on this host that no longer exists."""
    parts = (owner or "").rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Leases:
    """Claims, renews and releases account leases."""

    def __init__(self, db: Database, accounts: AccountStore, ttl: float = LEASE_TTL) -> None:
        self.db = db
        self.accounts = accounts
        self.ttl = ttl

    def claim(self, account_id: int, owner: str) -> None:
        """Take the account's lease or raise AccountBusy (a dead local holder is replaced)."""
        with self.db.begin() as conn:
            self.claim_in(conn, account_id, owner)

    def claim_in(self, conn: Connection, account_id: int, owner: str) -> None:
        """``claim`` inside the caller's (write) transaction; AccountBusy leaves it unchanged."""
        holder, _expires = self.accounts.lease_holder(conn, account_id)
        steal = holder if _dead_local_owner(holder) else None
        now = time.time()
        if not self.accounts.claim(conn, account_id, owner, now, self.ttl, steal_from=steal):
            raise AccountBusy(f"account {account_id} is being polled by {holder} right now")

    def dead_local_holders(self, conn: Connection, now: float) -> list[str]:
        """Owners of unexpired leases that were processes on this host and have died."""
        holders = self.accounts.live_lease_holders(conn, now, prefix=f"{_HOST}:")
        return [holder for holder in holders if _dead_local_owner(holder)]

    def renew(self, account_id: int, owner: str) -> None:
        """Extend the lease; raise AccountBusy if another process took it over."""
        with self.db.begin() as conn:
            if self.accounts.renew(conn, account_id, owner, time.time(), self.ttl):
                return
        raise AccountBusy(f"account {account_id}: lease lost to another process")

    def release(self, account_id: int, owner: str) -> None:
        """Give the lease back without recording a run."""
        with self.db.begin() as conn:
            self.accounts.release(conn, account_id, owner)
