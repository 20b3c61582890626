"""Provider limits by source host: a daily download budget and a connection cap per account.

Providers count both per account (per mailbox), not per client: Gmail suspends IMAP for an
account that downloads more than about 2,500 MB a day (1,250 MB over POP3) and allows 15
connections at once; Exchange Online allows 16 IMAP connections per mailbox by default. The
settings name the hosts (``imap.gmail.com=2500M, *=10G``); every account on a named host has
that budget and that cap of its own, and ``*`` gives the value for every other host (without
it, other hosts have none).

The connection cap is what mailhaul itself may open for one account at once: a poll takes
one connection (the scheduler never polls an account twice at once) and the push watcher may
use the rest (``watch_connections``), so watching never starves polling; the defaults leave
about half of a provider's limit to the user's own mail apps.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailhaul.domain.units import human_bytes
from mailhaul.domain.validation import FieldError, parse_size

DEFAULT_DAILY_BYTES = (
    "imap.gmail.com=2500M, imap.googlemail.com=2500M, pop.gmail.com=1250M, pop.googlemail.com=1250M"
)
DEFAULT_CONNECTIONS = "imap.gmail.com=7, imap.googlemail.com=7, outlook.office365.com=8, *=4"
MAX_CONNECTIONS = 1000
DAY = 24 * 3600.0
_HOST = re.compile(
    r"^(\*|[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*)$"
)


@dataclass(frozen=True)
class HostTable:
    """A value per source host, with ``*`` for the others (absent: no value)."""

    values: Mapping[str, int] = field(default_factory=dict)

    def get(self, host: str) -> int | None:
        """The value for ``host`` (case and a trailing dot ignored), else ``*``'s, else None."""
        found = self.values.get(host.strip().rstrip(".").lower())
        return found if found is not None else self.values.get("*")

    def text(self, size: bool = False) -> str:
        """As written in the settings (sizes in whole MiB where they are)."""

        def shown(value: int) -> str:
            if size and value % (1 << 30) == 0:
                return f"{value >> 30}G"
            if size and value % (1 << 20) == 0:
                return f"{value >> 20}M"
            return str(value)

        return ", ".join(f"{host}={shown(value)}" for host, value in self.values.items())


def parse_host_table(text: str, size: bool) -> HostTable:
    """``"imap.gmail.com=2500M, *=10G"`` (sizes when ``size``, else whole numbers from 1 to
    MAX_CONNECTIONS); FieldError naming the bad part otherwise."""
    values: dict[str, int] = {}
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        host, sep, raw = part.partition("=")
        host = host.strip().rstrip(".").lower()
        if not sep or not _HOST.match(host) or not raw:
            raise FieldError("limits", f'{part!r} is not HOST=VALUE (like "imap.gmail.com=15")')
        if size:
            try:
                value = parse_size(raw)
            except FieldError:
                raise FieldError("limits", f"{part!r}: {raw!r} is not a size like 2500M") from None
        else:
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_CONNECTIONS:
                raise FieldError("limits", f"{part!r}: {raw!r} is not 1 to {MAX_CONNECTIONS}")
            value = int(raw)
        values[host] = value
    return HostTable(values)


@dataclass(frozen=True)
class HostLimits:
    """The two provider limits, by source host."""

    daily_bytes: HostTable = field(
        default_factory=lambda: parse_host_table(DEFAULT_DAILY_BYTES, size=True)
    )
    connections: HostTable = field(
        default_factory=lambda: parse_host_table(DEFAULT_CONNECTIONS, size=False)
    )

    def daily_bytes_for(self, host: str) -> int | None:
        """Bytes one account on ``host`` may download in any 24 hours (None: no budget)."""
        return self.daily_bytes.get(host)

    def connections_for(self, host: str) -> int | None:
        """Connections mailhaul may hold at once for one account on ``host`` (None: no cap)."""
        return self.connections.get(host)


def watch_connections(cap: int | None, wanted: int) -> int:
    """How many of ``wanted`` push connections one account may have under its connection
    ``cap``: one connection is always left for its poll (cap 1: no watch at all)."""
    if cap is None:
        return wanted
    return max(0, min(wanted, cap - 1))


@dataclass(frozen=True)
class DailyBudget:
    """An account's download budget over the last 24 hours, from its runs' byte counts."""

    limit: int
    used: int
    resumes_at: float | None  # when enough of the past day's bytes fall out of the window

    @property
    def reached(self) -> bool:
        """True when no more may be downloaded until ``resumes_at``."""
        return self.used >= self.limit

    @property
    def left(self) -> int:
        """Bytes that may still be downloaded now (0 when reached)."""
        return max(0, self.limit - self.used)


def daily_budget(limit: int, runs: list[tuple[float, int]], now: float) -> DailyBudget:
    """The budget left, from ``runs`` as (ended at, bytes) within the last 24 hours.

    When the budget is spent, ``resumes_at`` is the first time the window drops back under
    the limit: each run's bytes leave the window 24 hours after it ended, oldest first.
    """
    recent = sorted((at, size) for at, size in runs if at > now - DAY and size > 0)
    used = sum(size for _, size in recent)
    resumes_at = None
    if used >= limit:
        remaining = used
        for at, size in recent:
            remaining -= size
            if remaining < limit:
                resumes_at = at + DAY
                break
    return DailyBudget(limit=limit, used=used, resumes_at=resumes_at)


DAILY_LIMIT_STATE = "daily limit"
"""An account's state while its daily download budget is spent (not an error: it is polled
again, by itself, when the budget allows)."""


@dataclass(frozen=True)
class DayUsage:
    """What one account on ``host`` downloaded in the 24 hours before a run began."""

    host: str
    limit: int
    runs: tuple[tuple[float, int], ...]  # (when, bytes)

    def before(self, now: float) -> DailyBudget:
        """The budget as the run begins."""
        return daily_budget(self.limit, list(self.runs), now)

    def after(self, now: float, size: int) -> DailyBudget:
        """The budget once the run, which downloaded ``size`` bytes, ended at ``now``."""
        return daily_budget(self.limit, [*self.runs, (now, size)], now)

    def run_bytes(self, per_run: int | None, now: float) -> int | None:
        """What a run may download: the per-run limit or what is left of the day's budget,
        whichever is smaller."""
        left = self.before(now).left
        return left if per_run is None else min(per_run, left)


def limit_reached_words(usage: DayUsage, budget: DailyBudget) -> str:
    """The run log's and the account page's sentence for a spent budget."""
    resumes = (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(budget.resumes_at))
        if budget.resumes_at is not None
        else "later"
    )
    return (
        f"daily download limit for {usage.host} reached ({human_bytes(budget.used)} of "
        f"{human_bytes(usage.limit)} in the last 24 hours): fetching resumes at {resumes}"
    )
