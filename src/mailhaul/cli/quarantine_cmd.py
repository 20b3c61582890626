"""`mailhaul quarantine list|release|delete`: infected messages the virus check kept out of
the owners' mailboxes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mailhaul.cli.base import Group, json_option
from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import print_json, print_table, table, when
from mailhaul.domain.units import human_bytes

if TYPE_CHECKING:
    from rich.table import Table

    from mailhaul.adapters.db.quarantine import QuarantinedMessage

app = Group(
    "quarantine", help="List, release or delete infected messages kept out of the mailboxes."
)
message_id = click.argument(
    "message_id",
    metavar="ID",
    type=click.IntRange(min=1),
    help="The message's id (see `mailhaul quarantine list`).",
)


@app.command("list")
@click.option("--account", "account_id", type=click.IntRange(min=1), help="Only this account's.")
@json_option
@click.pass_context
def list_(ctx: click.Context, account_id: int | None, json_out: bool) -> None:
    """List quarantined messages, newest first."""
    with errors_to_exit():
        app_ = state(ctx).app()
        if account_id is not None:
            app_.accounts.get(account_id)  # NotFound: exit 3 with the reason
        entries = app_.quarantine.listed(None if account_id is None else [account_id])
    if json_out:
        print_json([entry.as_dict() for entry in entries])
    elif entries:
        print_table(_table(entries))
    else:
        print("the quarantine is empty")


@app.command("release")
@message_id
@click.pass_context
def release(ctx: click.Context, message_id: int) -> None:
    """Deliver a quarantined message into its account's mailbox after all."""
    with errors_to_exit():
        entry = state(ctx).app().quarantine.release(message_id)
    print(f"message {entry.id} released to account {entry.account_id}'s mailbox")


@app.command("delete")
@message_id
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.pass_context
def delete(ctx: click.Context, message_id: int, yes: bool) -> None:
    """Delete a quarantined message for good."""
    with errors_to_exit():
        service = state(ctx).app().quarantine
        entry = service.get(message_id)
        if not yes and not click.confirm(
            f"Delete quarantined message {entry.id} ({entry.signature})?"
        ):
            raise click.exceptions.Exit(1)
        service.delete(message_id)
    print(f"message {message_id} deleted from the quarantine")


def _table(entries: list[QuarantinedMessage]) -> Table:
    return table(
        ("id", "account", "when", "virus", "from", "subject", "size"),
        (
            (
                str(entry.id),
                str(entry.account_id),
                when(entry.created_at),
                entry.signature,
                entry.sender or "-",
                entry.subject or "-",
                human_bytes(entry.size),
            )
            for entry in entries
        ),
    )
