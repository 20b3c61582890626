"""How the CLI shows things: JSON for scripts, tables and plain lines for people.

Every ``--json`` goes out through ``print_json``: each time (a key ending in ``_at``) as an
ISO 8601 UTC string (``"2026-12-04T07:49:47Z"``), null where there is none; durations are
numbers of seconds. Every table is built by ``table`` (or ``details``): no box lines, the
header bold on a terminal, whole values when piped; times in tables by ``when``, sizes by
``human_bytes``.

rich is imported only when a table is printed: plain lines go out with ``print``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from mailhaul.domain.units import human_bytes

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from mailhaul.adapters.db.runs import RunRecord
    from mailhaul.domain.account import Account
    from mailhaul.services.status import AccountStatus


PIPED_WIDTH = 100_000
"""Columns a table may take when stdout is not a terminal: whole values for grep and awk."""

TIME_KEY_SUFFIX = "_at"
"""A JSON key ending so holds a time (``started_at``, ``next_poll_at``): ISO 8601 in UTC."""


@cache
def console() -> Console:
    """The console tables are printed on (stdout): the terminal's width, or, piped, as wide
    as the values are (rich would otherwise cut every table to 80 columns)."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, width=PIPED_WIDTH, soft_wrap=True)


@cache
def err_console() -> Console:
    """The console progress bars are drawn on (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table as every command prints one: upper-case column names (bold on a terminal),
    no box lines, each value as it is (never read as rich markup; a line break as a
    space)."""
    built = _plain_table(show_header=True)
    for column in columns:
        built.add_column(column.upper())
    return _filled(built, rows)


def details(rows: Iterable[tuple[str, str]]) -> Table:
    """One thing as a two-column table: each name (bold on a terminal) and its value."""
    built = _plain_table(show_header=False)
    built.add_column(style="bold")
    built.add_column()
    return _filled(built, rows)


def _plain_table(show_header: bool) -> Table:
    from rich.table import Table

    return Table(box=None, pad_edge=False, show_header=show_header)


def _filled(built: Table, rows: Iterable[Sequence[str]]) -> Table:
    from rich.text import Text

    for row in rows:
        built.add_row(*(Text(value.replace("\n", " ")) for value in row))
    return built


def print_table(shown: Table) -> None:
    """Print a table (laid out for the terminal's width; whole values when piped)."""
    console().print(shown)


def when(timestamp: float | None) -> str:
    """A local time for people (``2026-12-04 08:49:47``), or '-'."""
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def iso_time(timestamp: float | None) -> str | None:
    """A time for scripts: ISO 8601 in UTC to the second (``2026-12-04T07:49:47Z``, which
    ``datetime.fromisoformat`` reads), or None."""
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def json_ready(data: Any) -> Any:
    """``data`` with every time in it (a number under a key ending in ``_at``, at any
    depth) as ``iso_time`` gives it."""
    if isinstance(data, dict):
        return {
            key: (
                iso_time(value)
                if str(key).endswith(TIME_KEY_SUFFIX)
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                else json_ready(value)
            )
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [json_ready(item) for item in data]
    return data


def print_json(data: Any) -> None:
    """Write JSON to stdout, its times as ISO 8601 UTC strings (``json_ready``)."""
    sys.stdout.write(json.dumps(json_ready(data), indent=2, sort_keys=False) + "\n")


def account_dict(account: Account, status: AccountStatus | None = None) -> dict[str, Any]:
    """An account as JSON-ready data; there is no password in it, by construction.

    With its ``status``, the state is the one every view shows (``running``, ``paused``, …).
    """
    spec = account.spec
    return {
        "id": account.id,
        **spec.as_dict(),
        "deliver_to": spec.destination,
        "state": account.state if status is None else status.state,
        "paused_reason": account.paused_reason,
        "sign_in_problem": account.sign_in_problem,
        "last_run_at": account.last_run_at,
        "last_result": account.last_result,
        "last_error": account.last_error,
        "next_poll_at": account.next_poll_at,
        "consecutive_failures": account.consecutive_failures,
        "limit_resumes_at": None if status is None else status.limited_until,
    }


def run_dict(run: RunRecord) -> dict[str, Any]:
    """A run as JSON-ready data (without its log)."""
    duration = None if run.finished_at is None else round(run.finished_at - run.started_at, 3)
    return {
        "id": run.id,
        "account_id": run.account_id,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": duration,
        "result": run.result,
        "fetched": run.fetched,
        "bytes": run.bytes,
        "deleted": run.deleted,
        "skipped": run.skipped,
        "spam": run.spam,
        "viruses": run.viruses,
        "unscanned": run.unscanned,
        "error": run.error,
    }


def accounts_table(accounts: list[Account], statuses: list[AccountStatus]) -> Table:
    """A table of accounts, with their state as every view words it."""
    state_of = {status.id: status.state_text for status in statuses}
    columns = ("id", "owner", "source", "user", "options", "deliver to", "active", "state")
    return table(
        columns,
        (
            (
                str(account.id),
                account.spec.owner,
                f"{account.spec.protocol}/{account.spec.security} "
                f"{account.spec.host}:{account.spec.port}",
                account.spec.username,
                _options(account),
                account.spec.destination,
                "yes" if account.spec.active else "no",
                state_of.get(account.id, account.state),
            )
            for account in accounts
        ),
    )


def _options(account: Account) -> str:
    spec = account.spec
    opts = [
        name
        for name, on in (
            ("keep", spec.options.keep),
            ("fetchall", spec.options.fetchall),
            ("flush", spec.options.flush),
            (f"antispam={spec.filters.antispam}", spec.filters.antispam != "off"),
            (f"antivirus={spec.filters.antivirus}", spec.filters.antivirus != "off"),
        )
        if on
    ]
    return ",".join(opts) or "-"


def shown_value(key: str, value: Any) -> str:
    """One value of a ``details`` table: a time by ``when``, a size in human units,
    yes/no, a list comma-separated, '-' for none."""
    if value is None:
        return "-"
    if key.endswith(TIME_KEY_SUFFIX) and isinstance(value, int | float):
        return when(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in ("max_size", "size") and isinstance(value, int):
        return human_bytes(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "-"
    return str(value)


def account_details(account: Account, status: AccountStatus) -> Table:
    """One account as a two-column table, its state in the words every view uses."""
    rows = []
    for key, value in account_dict(account, status).items():
        if key in ("paused_reason", "sign_in_problem", "limit_resumes_at"):
            continue  # in the state's words
        if key == "state":
            value = status.state_text
        elif key == "next_poll_at" and status.next_run_text is not None:
            value = status.next_run_text
        rows.append((key, shown_value(key, value)))
    return details(rows)


def duration_text(seconds: float | None) -> str:
    """A run's duration for people: ``2.5s``, or '-' while it runs."""
    return "-" if seconds is None else f"{seconds:.1f}s"


def runs_table(runs: list[RunRecord]) -> Table:
    """A table of runs."""
    columns = ("run", "started", "trigger", "result", "fetched", "bytes", "deleted", "time")
    return table(
        columns,
        (
            (
                str(run.id),
                when(run.started_at),
                run.trigger,
                run.result if not run.error else f"{run.result}: {run.error}",
                str(run.fetched),
                human_bytes(run.bytes),
                str(run.deleted),
                duration_text(run_dict(run)["duration_seconds"]),
            )
            for run in runs
        ),
    )
