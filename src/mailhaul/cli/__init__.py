"""The `mailhaul` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from mailhaul import __version__
from mailhaul.bootstrap import init_home
from mailhaul.cli import accounts, db, importing, settings_cmd, users
from mailhaul.cli import status as status_cli
from mailhaul.cli.context import (
    EXIT_FAILED,
    CliState,
    errors_to_exit,
    fail,
    read_password_stdin,
    state,
)
from mailhaul.cli.fetching import fetch_accounts
from mailhaul.cli.output import console, print_json, run_dict, runs_table

app = typer.Typer(
    help="mailhaul: fetch mail from POP3/IMAP accounts into local mailboxes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(accounts.app, name="account")
app.add_typer(importing.app, name="import")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="user")
app.add_typer(settings_cmd.app, name="settings")
app.command("export")(importing.export)
app.command("status")(status_cli.status)
key_app = typer.Typer(help="Manage the key that encrypts stored passwords.", no_args_is_help=True)
app.add_typer(key_app, name="key")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
IdArg = Annotated[int, typer.Argument(help="The account's id.", show_default=False)]


def _version(value: bool) -> None:
    if value:
        print(f"mailhaul {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="Data directory [env MAILHAUL_HOME; default ~/.local/share/mailhaul]."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Database URL [env MAILHAUL_DATABASE_URL].")
    ] = None,
    maildir_path: Annotated[
        str | None,
        typer.Option(help="Maildir template, e.g. '{home}/mail/{domain}/{local}'."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """mailhaul: fetch mail from POP3/IMAP accounts into local mailboxes."""
    ctx.obj = CliState(
        home=home,
        overrides={"database.url": database_url, "delivery.maildir_path": maildir_path},
        verbose=verbose,
    )
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def init(
    ctx: typer.Context,
    admin_login: Annotated[
        str, typer.Option(help="Login of the first admin (made when there are no users).")
    ] = "admin",
    admin_password_stdin: Annotated[
        bool,
        typer.Option(
            "--admin-password-stdin",
            help="Read the first admin's password from standard input (default: generate "
            "one and print it once).",
        ),
    ] = False,
) -> None:
    """Create the data directory, key file, settings file, database and first admin.

    Idempotent: what exists is left as it is.
    """
    from mailhaul.cli.users import generated_password
    from mailhaul.domain.access import Principal, Role

    with errors_to_exit():
        settings = state(ctx).settings()
        made = init_home(settings)
        users = state(ctx).app(stored_settings=False).users
        first_admin = users.count() == 0
        if first_admin:
            password = read_password_stdin() if admin_password_stdin else generated_password()
            users.add(Principal.system(), admin_login, Role.ADMIN, password)
    for path in made:
        console.print(f"created {path}")
    console.print(f"mailhaul home: {settings.home}")
    console.print(f"database:      {settings.database_url}")
    console.print(f"maildirs:      {settings.maildir_path}")
    if first_admin:
        console.print(f"web admin:     {admin_login}")
        if not admin_password_stdin:
            console.print(f"password:      {password}   (shown only now)")
    elif admin_password_stdin:
        console.print("users exist already: the admin password was not changed")


@app.command()
def fetch(
    ctx: typer.Context,
    account_ids: Annotated[list[int] | None, typer.Argument(help="Account ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every active account.")] = False,
    here: Annotated[
        bool, typer.Option("--here", help="Poll in this process even while a service runs.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Poll accounts now; exits 0 only if every one ran without error.

    While `mailhaul serve` or `worker` runs, the accounts go to the head of its queue and
    this waits for their runs (a poll never runs beside another).
    """
    if bool(account_ids) == all_:
        fail("name account ids, or --all")
    with errors_to_exit():
        code = fetch_accounts(state(ctx).app(), account_ids or [], all_, json_out, here)
    raise typer.Exit(code)


@app.command()
def log(ctx: typer.Context, account_id: IdArg) -> None:
    """Print the last run's log."""
    with errors_to_exit():
        runs = state(ctx).app().accounts.runs_of(account_id, limit=1)
    if not runs:
        console.print(f"account {account_id} has not run yet")
        return
    sys.stdout.write(runs[0].log)


@app.command()
def runs(
    ctx: typer.Context,
    account_id: IdArg,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Show the run history: time, result, messages, bytes, duration."""
    with errors_to_exit():
        history = state(ctx).app().accounts.runs_of(account_id, limit=limit)
    if json_out:
        print_json([run_dict(run) for run in history])
    else:
        console.print(runs_table(history))


@app.command()
def refused(ctx: typer.Context, account_id: IdArg, json_out: JsonOpt = False) -> None:
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
        console.print(f"account {account_id}: no refused messages")
    else:
        for r in records:
            console.print(f"{r.folder} {r.uid}: {r.note}", soft_wrap=True)


@app.command()
def retry(
    ctx: typer.Context,
    account_id: IdArg,
    uid: Annotated[str | None, typer.Argument(help="One message's UID (default: all).")] = None,
) -> None:
    """Try refused messages again on the next run (and make the account due now)."""
    with errors_to_exit():
        cleared = state(ctx).app().accounts.retry(account_id, uid)
    console.print(f"account {account_id}: {cleared} refused message(s) will be tried again")


@app.command()
def serve(
    ctx: typer.Context,
    workers: Annotated[int | None, typer.Option(help="Accounts polled at once.")] = None,
) -> None:
    """Run the service: poll every active account on its interval until stopped.

    SIGTERM or Ctrl-C stop it cleanly: running polls finish the message in hand, record
    it and log out.
    """
    from mailhaul.cli.service import run_service  # web stack: only for the service

    run_service(state(ctx), workers)


@app.command()
def worker(
    ctx: typer.Context,
    workers: Annotated[int | None, typer.Option(help="Accounts polled at once.")] = None,
) -> None:
    """Run only the scheduler (more of them share the work on PostgreSQL)."""
    from mailhaul.cli.service import run_service

    run_service(state(ctx), workers, web=False)


@key_app.command("rotate")
def key_rotate(ctx: typer.Context) -> None:
    """Re-encrypt every stored password with a new key and retire the old ones."""
    with errors_to_exit():
        new_id, count, dropped = state(ctx).app().accounts.rotate_key()
    console.print(
        f"new key {new_id}: {count} password(s) re-encrypted; retired {', '.join(dropped) or '-'}"
    )


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["EXIT_FAILED", "main", "print_json"]
