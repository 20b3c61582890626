"""`mailhaul status`: the service and its accounts at a glance (`--json` for scripts)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import console as rich_console
from mailhaul.cli.output import print_json, when
from mailhaul.domain.units import human_bytes

if TYPE_CHECKING:
    from rich.table import Table

    from mailhaul.services.status import AccountStatus, StatusReport, StatusSummary


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def summary_table(summary: StatusSummary) -> Table:
    """Accounts by state, running polls, queue lag, oldest due."""
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    by_state = ", ".join(f"{name} {count}" for name, count in summary.accounts_by_state.items())
    table.add_row("accounts", f"{summary.accounts_total}" + (f" ({by_state})" if by_state else ""))
    table.add_row("running polls", str(summary.running_polls))
    table.add_row("queue lag", _age(summary.queue_lag_seconds))
    table.add_row("oldest due", when(summary.oldest_due_at))
    live = [w for w in summary.workers if not w.stale]
    table.add_row("workers", f"{len(live)} live, {len(summary.workers) - len(live)} stale")
    return table


def workers_table(summary: StatusSummary) -> Table:
    """One row per scheduler process, with its heartbeat age."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("WORKER", "HOST", "PID", "STARTED", "HEARTBEAT", "RUNNING"):
        table.add_column(column)
    for worker in summary.workers:
        beat = f"{_age(worker.heartbeat_age)} ago" + (" (stale)" if worker.stale else "")
        table.add_row(
            worker.id,
            worker.hostname,
            str(worker.pid),
            when(worker.started_at),
            beat,
            str(worker.running),
        )
    return table


def _last_run(account: AccountStatus) -> tuple[str, str, str]:
    run = account.last_run
    if run is None:
        return when(account.last_run_at), account.last_result or "-", "-"
    result = run.result if not run.error else f"{run.result}: {run.error}"
    counts = f"{run.fetched} msg, {human_bytes(run.bytes)}, {run.deleted} del"
    return when(run.finished_at or run.started_at), result, counts


def accounts_table(accounts: list[AccountStatus]) -> Table:
    """One row per account: state, last run, next run, failures."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    columns = ("ID", "OWNER", "SOURCE", "STATE", "LAST RUN", "RESULT", "COUNTS", "NEXT RUN")
    for column in (*columns, "FAILURES"):
        table.add_column(column)
    for account in accounts:
        last_at, result, counts = _last_run(account)
        table.add_row(
            str(account.id),
            account.owner,
            account.source,
            account.state_text,
            last_at,
            result,
            counts,
            account.next_run_text or when(account.next_poll_at),
            str(account.consecutive_failures),
        )
    return table


def print_report(report: StatusReport, one_account: bool) -> None:
    """The tables for people; with one account, its last log too."""
    console = rich_console()
    console.print(summary_table(report.summary))
    if report.summary.workers:
        console.print()
        console.print(workers_table(report.summary))
    console.print()
    if report.accounts:
        console.print(accounts_table(report.accounts))
    else:
        console.print("no accounts")
    if one_account:
        log = report.accounts[0].last_log
        console.print()
        if log is None:
            console.print("last log: none (the account has not finished a run yet)")
        else:
            console.print("last log:")
            sys.stdout.flush()
            sys.stdout.write(log)


@click.command()
@click.option("--account", "account_id", type=int, help="Only this account, with its last log.")
@click.option("--json", "json_out", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, account_id: int | None, json_out: bool) -> None:
    """Show the service at a glance: accounts by state, queue lag, workers, each account."""
    from mailhaul.services.status import StatusService, status_dict

    with errors_to_exit():
        report = StatusService(state(ctx).app().db).report(account_id)
    if json_out:
        print_json(status_dict(report))
    else:
        print_report(report, account_id is not None)
