"""`mailhaul status`: the service and its accounts at a glance (`--json` for scripts)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from mailhaul.cli.base import json_option
from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import console as rich_console
from mailhaul.cli.output import details, print_json, table, when
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
    by_state = ", ".join(f"{name} {count}" for name, count in summary.accounts_by_state.items())
    live = [w for w in summary.workers if not w.stale]
    return details(
        [
            ("accounts", f"{summary.accounts_total}" + (f" ({by_state})" if by_state else "")),
            ("running polls", str(summary.running_polls)),
            ("queue lag", _age(summary.queue_lag_seconds)),
            ("oldest due", when(summary.oldest_due_at)),
            ("workers", f"{len(live)} live, {len(summary.workers) - len(live)} stale"),
        ]
    )


def workers_table(summary: StatusSummary) -> Table:
    """One row per scheduler process, with its heartbeat age."""
    return table(
        ("worker", "host", "pid", "started", "heartbeat", "running"),
        (
            (
                worker.id,
                worker.hostname,
                str(worker.pid),
                when(worker.started_at),
                f"{_age(worker.heartbeat_age)} ago" + (" (stale)" if worker.stale else ""),
                str(worker.running),
            )
            for worker in summary.workers
        ),
    )


def _last_run(account: AccountStatus) -> tuple[str, str, str]:
    run = account.last_run
    if run is None:
        return when(account.last_run_at), account.last_result or "-", "-"
    result = run.result if not run.error else f"{run.result}: {run.error}"
    counts = f"{run.fetched} msg, {human_bytes(run.bytes)}, {run.deleted} del"
    return when(run.finished_at or run.started_at), result, counts


def accounts_table(accounts: list[AccountStatus]) -> Table:
    """One row per account: state, last run, next run, failures."""
    columns = ("id", "owner", "source", "state", "last run", "result", "counts", "next run")
    rows = []
    for account in accounts:
        last_at, result, counts = _last_run(account)
        rows.append(
            (
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
        )
    return table((*columns, "failures"), rows)


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
@json_option
@click.pass_context
def status(ctx: click.Context, account_id: int | None, json_out: bool) -> None:
    """Show the service at a glance: accounts by state, queue lag, workers, each account."""
    from mailhaul.services.push_status import PushStatus
    from mailhaul.services.status import StatusService, status_dict

    with errors_to_exit():
        app = state(ctx).app()
        report = StatusService(app.db).report(account_id)
        push = PushStatus(app.db, app.settings.push_enabled, app.settings.limits)
        watches = push.counts()
        one = None if account_id is None else push.of(app.accounts.get(account_id))
    if json_out:
        data = status_dict(report)
        data["summary"]["push"] = watches
        if one is not None:
            data["accounts"][0]["push"] = one.as_dict()
        print_json(data)
        return
    print(push_line(watches))
    if one is not None:
        shown = one.words(when(one.since)) if one.state == "watching" and one.since else ""
        print(f"push of account {account_id}: {shown or one.words()}")
    print_report(report, account_id is not None)


def push_line(watches: dict[str, int]) -> str:
    """``push: 12 watched (1 reconnecting, 3 polling only)``: the watches of every process."""
    others = {
        "connecting": "connecting",
        "reconnecting": "reconnecting",
        "unsupported": "polling only",
        "capped": "polling only under a connection cap",
        "waiting": "waiting for a poll to sign in",
    }
    more = [f"{watches[key]} {words}" for key, words in others.items() if watches.get(key)]
    return f"push: {watches.get('watching', 0)} watched" + (f" ({', '.join(more)})" if more else "")
