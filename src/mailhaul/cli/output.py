"""How the CLI shows things: JSON for scripts, tables and plain lines for people.

rich is imported only when a table is printed: plain lines go out with ``print``.
"""

from __future__ import annotations

import json
import sys
import time
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


def print_table(table: Table) -> None:
    """Print a table (laid out for the terminal's width; whole values when piped)."""
    console().print(table)


def when(timestamp: float | None) -> str:
    """A local time for people, or '-'."""
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


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
        "duration": duration,
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


def print_json(data: Any) -> None:
    """Write JSON to stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def accounts_table(accounts: list[Account], statuses: list[AccountStatus]) -> Table:
    """A table of accounts, with their state as every view words it."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("ID", "OWNER", "SOURCE", "USER", "OPTIONS", "DELIVER TO", "ACTIVE", "STATE"):
        table.add_column(column)
    state_of = {status.id: status.state_text for status in statuses}
    for account in accounts:
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
        table.add_row(
            str(account.id),
            spec.owner,
            f"{spec.protocol}/{spec.security} {spec.host}:{spec.port}",
            spec.username,
            ",".join(opts) or "-",
            spec.destination,
            "yes" if spec.active else "no",
            state_of.get(account.id, account.state),
        )
    return table


def account_details(account: Account, status: AccountStatus) -> Table:
    """One account as a two-column table, its state in the words every view uses."""
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in account_dict(account, status).items():
        if key == "state":
            value = status.state_text
        elif key in ("paused_reason", "sign_in_problem"):
            continue  # in the state's words
        elif key == "next_poll_at" and status.next_run_text is not None:
            value = status.next_run_text
        elif key.endswith("_at"):
            value = when(value)
        elif isinstance(value, list):
            value = ", ".join(value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        table.add_row(key, "-" if value is None else str(value))
    return table


def runs_table(runs: list[RunRecord]) -> Table:
    """A table of runs."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("RUN", "STARTED", "TRIGGER", "RESULT", "FETCHED", "BYTES", "DELETED", "TIME"):
        table.add_column(column)
    for run in runs:
        data = run_dict(run)
        table.add_row(
            str(run.id),
            when(run.started_at),
            run.trigger,
            run.result if not run.error else f"{run.result}: {run.error}",
            str(run.fetched),
            human_bytes(run.bytes),
            str(run.deleted),
            "-" if data["duration"] is None else f"{data['duration']:.1f}s",
        )
    return table
