"""`mailhaul key rotate`: the key that encrypts stored passwords."""

from __future__ import annotations

import click

from mailhaul.cli.base import Group
from mailhaul.cli.context import errors_to_exit, state

app = Group("key", help="Manage the key that encrypts stored passwords.")


@app.command("rotate")
@click.pass_context
def rotate(ctx: click.Context) -> None:
    """Re-encrypt every stored password with a new key and retire the old ones."""
    with errors_to_exit():
        new_id, count, dropped = state(ctx).app().accounts.rotate_key()
    print(
        f"new key {new_id}: {count} password(s) re-encrypted; retired {', '.join(dropped) or '-'}"
    )
