"""`mailhaul key rotate`: the key that encrypts stored passwords and OAuth secrets."""

from __future__ import annotations

import click

from mailhaul.cli.base import Group
from mailhaul.cli.context import errors_to_exit, state

app = Group("key", help="Manage the key that encrypts stored passwords and OAuth secrets.")


@app.command("rotate")
@click.pass_context
def rotate(ctx: click.Context) -> None:
    """Re-encrypt every stored password and OAuth secret with a new key; retire the old ones."""
    with errors_to_exit():
        new_id, count, dropped = state(ctx).app().accounts.rotate_key()
    print(f"new key {new_id}: {count} secret(s) re-encrypted; retired {', '.join(dropped) or '-'}")
