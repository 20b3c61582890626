"""`mailhaul log`, `runs`, `refused` and `retry`: what an account's runs did."""

from __future__ import annotations

import sys

import click

from mailhaul.cli.base import json_option
from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import print_json, print_table, run_dict, table, when

id_argument = click.argument("account_id", type=int, help="The account's id.")


@click.command()
@id_argument
@click.option("--run", "run_id", type=int, help="This run's log (ids: `mailhaul runs ID`).")
@click.option("--json", "json_out", is_flag=True, help="Print the run, with its log, as JSON.")
@click.pass_context
def log(ctx: click.Context, account_id: int, run_id: int | None, json_out: bool) -> None:
    """Print the last run's log."""
    with errors_to_exit():
        accounts = state(ctx).app().accounts
        runs = [accounts.run_of(account_id, run_id)] if run_id else accounts.runs_of(account_id, 1)
    if json_out:
        print_json(run_dict(runs[0]) | {"log": runs[0].log} if runs else None)
    elif not runs:
        print(f"account {account_id} has not run yet")
    else:
        sys.stdout.write(runs[0].log)


@click.command()
@id_argument
@click.option("--limit", type=int, default=20, help="How many runs, newest first.")
@click.option("--before", type=int, help="Only runs older than this run id (the next page).")
@click.option("--hide-empty", is_flag=True, help="Leave out the runs that found nothing.")
@json_option
@click.pass_context
def runs(
    ctx: click.Context,
    account_id: int,
    limit: int,
    before: int | None,
    hide_empty: bool,
    json_out: bool,
) -> None:
    """Show the run history: time, result, messages, bytes, duration."""
    with errors_to_exit():
        accounts = state(ctx).app().accounts
        history = accounts.runs_of(account_id, max(limit, 1), before, hide_empty)
    if json_out:
        print_json([run_dict(run) for run in history])
    else:
        from mailhaul.cli.output import runs_table

        print_table(runs_table(history))


@click.command()
@id_argument
@json_option
@click.pass_context
def refused(ctx: click.Context, account_id: int, json_out: bool) -> None:
    """List messages the local backend refused for good (they stay on the server)."""
    with errors_to_exit():
        records = state(ctx).app().accounts.refused_of(account_id)
    if json_out:
        print_json(
            [
                {"folder": r.folder, "uid": r.uid, "reason": r.note, "refused_at": r.recorded_at}
                for r in records
            ]
        )
    elif not records:
        print(f"account {account_id}: no refused messages")
    else:
        rows = ((r.folder, r.uid, when(r.recorded_at), r.note or "-") for r in records)
        print_table(table(("folder", "uid", "refused", "reason"), rows))


@click.command()
@id_argument
@click.argument("uid", required=False, help="One message's UID (default: all).")
@click.pass_context
def retry(ctx: click.Context, account_id: int, uid: str | None) -> None:
    """Try refused messages again on the next run (and make the account due now)."""
    with errors_to_exit():
        cleared = state(ctx).app().accounts.retry(account_id, uid)
    print(f"account {account_id}: {cleared} refused message(s) will be tried again")
