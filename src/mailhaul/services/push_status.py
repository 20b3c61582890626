"""The push state of accounts as every view words it (the account page, `mailhaul status`,
the API): read from ``push_watches``, which the watching process keeps current."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.domain.account import Account
from mailhaul.domain.limits import HostLimits
from mailhaul.services.push_plan import capped_words


@dataclass(frozen=True)
class PushState:
    """One account's push: ``state`` is off, capped (its connection cap leaves no room for
    a watch), idle (nobody watches it yet: no service, or not yet), connecting, watching,
    reconnecting, unsupported or waiting; ``since`` when it entered it, ``reason`` why
    (reconnecting, waiting, unsupported, capped) or, watching, what (folders, NOTIFY)."""

    state: str
    since: float | None = None
    reason: str = ""
    events: int = 0

    def words(self, when: str = "") -> str:
        """In a line; ``when`` is ``since`` as the view shows times."""
        if self.state == "off":
            return "off"
        if self.state == "idle":
            return "not watched yet (it is while serve or worker runs)"
        if self.state == "capped":
            return f"polling only: {self.reason}"
        if self.state == "watching":
            what = f"watching {self.reason}" if self.reason else "watching"
            return f"{what} since {when}" if when else what
        if self.state == "unsupported":
            return "not supported by the server (polling only)"
        if self.state == "reconnecting":
            return f"reconnecting ({self.reason})" if self.reason else "reconnecting"
        if self.state == "waiting":
            return f"waiting: {self.reason}" if self.reason else "waiting"
        return self.state

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "events": self.events,
            "text": self.words(),
        }


def push_state(
    account: Account,
    default: bool,
    row: WatchRow | None,
    now: float,
    limits: HostLimits | None = None,
) -> PushState:
    """An account's push state from its settings, its host's connection cap (``limits``)
    and its watch row (if a live one)."""
    spec = account.spec
    if not spec.pushes(default):
        return PushState("off")
    if not spec.active or account.paused_reason is not None:
        return PushState("off", reason="the account is not polled")
    capped = capped_words(spec.host, limits.connections_for(spec.host)) if limits else ""
    if capped:
        return PushState("capped", reason=capped)
    if row is None or row.lease_expires < now:
        return PushState("idle")
    return PushState(row.state, row.since, row.reason, row.events)


class PushStatus:
    """Reads the watch rows; ``default`` is the setting push.enabled, ``limits`` the
    provider limits (the connection cap)."""

    def __init__(self, db: Database, default: bool, limits: HostLimits | None = None) -> None:
        self.db = db
        self.default = default
        self.limits = limits
        self.store = PushWatchStore()

    def of(self, account: Account) -> PushState:
        """One account's push state (the caller has checked it may see the account)."""
        now = time.time()
        with self.db.read() as conn:
            row = self.store.rows(conn, [account.id]).get(account.id)
        return push_state(account, self.default, row, now, self.limits)

    def counts(self) -> dict[str, int]:
        """Watches by state across every running process (``watching``: connections
        idling now)."""
        with self.db.read() as conn:
            return self.store.counts(conn, time.time())
