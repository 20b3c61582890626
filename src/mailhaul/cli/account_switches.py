"""`mailhaul account enable|resume|disable`: switching an account's polling on and off."""

from __future__ import annotations

import click

from mailhaul.cli.context import errors_to_exit, state


def _set_active(ctx: click.Context, account_id: int, active: bool) -> None:
    with errors_to_exit():
        state(ctx).app().accounts.set_active(account_id, active)
    print(f"account {account_id} {'enabled' if active else 'disabled'}")


@click.command("enable")
@click.argument("account_id", type=int, help="The account's id.")
@click.pass_context
def enable(ctx: click.Context, account_id: int) -> None:
    """Switch polling on (due at once; earlier failures forgiven; a paused account resumes)."""
    _set_active(ctx, account_id, True)


@click.command("resume")
@click.argument("account_id", type=int, help="The account's id.")
@click.pass_context
def resume(ctx: click.Context, account_id: int) -> None:
    """Resume an account paused after login failures (due at once; a disabled one stays off)."""
    with errors_to_exit():
        account = state(ctx).app().accounts.resume(account_id)
    if account.spec.active:
        print(f"account {account_id} resumed: its next poll is due now")
    else:
        print(f"account {account_id} resumed, but it is disabled: enable it to poll it")


@click.command("disable")
@click.argument("account_id", type=int, help="The account's id.")
@click.pass_context
def disable(ctx: click.Context, account_id: int) -> None:
    """Switch polling off."""
    _set_active(ctx, account_id, False)
