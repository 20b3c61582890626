"""`mailhaul incidents`: accounts in trouble, since when, and who was told."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mailhaul.cli.base import json_option
from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import print_json, print_table, table, when

if TYPE_CHECKING:
    from rich.table import Table

    from mailhaul.adapters.db.incidents import Incident


@click.command()
@click.option("--account", "account_id", type=click.IntRange(min=1), help="Only this account's.")
@click.option("--all", "show_all", is_flag=True, help="Closed incidents too (the history).")
@json_option
@click.pass_context
def incidents(ctx: click.Context, account_id: int | None, show_all: bool, json_out: bool) -> None:
    """List accounts' incidents (open ones; --all: the history too) and their notices."""
    with errors_to_exit():
        app_ = state(ctx).app()
        if account_id is not None:
            app_.accounts.get(account_id)  # NotFound: exit 3 with the reason
        service = app_.incidents
        found = service.listed(None if account_id is None else [account_id], not show_all)
        notices = {incident.id: service.notices_of(incident.id) for incident in found}
    if json_out:
        print_json([{**i.as_dict(), "notices": notices[i.id]} for i in found])
    elif found:
        print_table(_table(found, notices))
    else:
        print("no open incidents: every account works" if not show_all else "no incidents")


def _table(found: list[Incident], notices: dict[int, list[dict[str, object]]]) -> Table:
    columns = ("id", "account", "owner", "what", "since", "runs", "notices", "last error")
    rows = []
    for incident in found:
        what = str(incident.kind) + (
            "" if incident.open else f" (ended {when(incident.closed_at)})"
        )
        told = ", ".join(
            f"{n['event']} to {n['recipient'] or n['channel']}: {n['state']}"
            for n in notices[incident.id]
        )
        rows.append(
            (
                str(incident.id),
                str(incident.account_id),
                incident.owner,
                what,
                when(incident.opened_at),
                str(incident.failures),
                told or "none yet",
                incident.reason[:120] or "-",
            )
        )
    return table(columns, rows)
