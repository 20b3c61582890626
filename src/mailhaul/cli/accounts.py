"""`mailhaul account …`: add, list, show, edit, delete, enable, disable."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from mailhaul.cli.context import errors_to_exit, fail, read_password_stdin, state
from mailhaul.cli.output import (
    account_details,
    account_dict,
    accounts_table,
    console,
    print_json,
)
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security, default_port

app = typer.Typer(help="Manage the remote POP3/IMAP accounts mailhaul polls.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
IdArg = Annotated[int, typer.Argument(help="The account's id.", show_default=False)]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from standard input (first line). Prompts on a terminal.",
    ),
]
PasswordRefused = Annotated[
    str | None,
    typer.Option("--password", hidden=True, help="Refused: use --password-stdin."),
]
FoldersOpt = Annotated[
    list[str] | None,
    typer.Option("--folder", help="IMAP folder to poll (repeatable; default INBOX)."),
]


def _refuse_password_flag(password: str | None) -> None:
    if password is not None:
        fail(
            "a password on the command line would leak into `ps` and shell history: "
            "pipe it in with --password-stdin"
        )


@app.command("add")
def add(
    ctx: typer.Context,
    owner: Annotated[str, typer.Option(help="Local address of the user who owns the account.")],
    host: Annotated[str, typer.Option(help="The POP3/IMAP server's host name.")],
    username: Annotated[str, typer.Option(help="Login name on the remote server.")],
    protocol: Annotated[Protocol, typer.Option(help="pop3 or imap.")] = Protocol.POP3,
    port: Annotated[int | None, typer.Option(help="Default: 110/995 (POP3), 143/993.")] = None,
    security: Annotated[
        Security, typer.Option(help="ssl (implicit TLS), starttls, or none (in clear).")
    ] = Security.SSL,
    ca_file: Annotated[str | None, typer.Option(help="Trust this CA file (PEM).")] = None,
    no_verify_cert: Annotated[
        bool, typer.Option("--no-verify-cert", help="Do not check the certificate (logged).")
    ] = False,
    password_stdin: PasswordStdin = False,
    password: PasswordRefused = None,
    folder: FoldersOpt = None,
    keep: Annotated[bool, typer.Option(help="Leave messages on the server.")] = False,
    fetchall: Annotated[
        bool, typer.Option(help="Also fetch messages already read (\\Seen); each once.")
    ] = False,
    flush: Annotated[bool, typer.Option(help="Delete old messages before fetching.")] = False,
    deliver_to: Annotated[
        str | None, typer.Option(help="Local address to deliver to (default: the owner).")
    ] = None,
    interval: Annotated[int | None, typer.Option(help="Seconds between polls.")] = None,
    max_size: Annotated[
        int | None, typer.Option(help="Leave messages larger than this (bytes) on the server.")
    ] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Add it switched off.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Add an account; prints its id (or, with --json, the account)."""
    _refuse_password_flag(password)
    if not password_stdin:
        fail("the account needs a password: pipe it in with --password-stdin")
    cli = state(ctx)
    with errors_to_exit():
        app_ = cli.app()
        settings = app_.settings
        spec = AccountSpec(
            owner=owner,
            protocol=protocol,
            host=host,
            port=port or default_port(protocol, security),
            security=security,
            username=username,
            verify_cert=not no_verify_cert,
            ca_file=ca_file,
            options=RetrievalOptions(
                keep=keep,
                fetchall=fetchall,
                flush=flush,
                max_size=max_size or settings.max_size,
                folders=tuple(folder or ("INBOX",)),
            ),
            deliver_to=deliver_to or "",
            interval=interval or settings.interval,
            active=not inactive,
        )
        account = app_.accounts.add(spec, read_password_stdin())
    if json_out:
        print_json(account_dict(account))
    else:
        print(account.id)


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List every account."""
    with errors_to_exit():
        accounts = state(ctx).app().accounts.list_all()
    if json_out:
        print_json([account_dict(a) for a in accounts])
    elif accounts:
        console.print(accounts_table(accounts))
    else:
        console.print("no accounts yet: add one with `mailhaul account add`")


@app.command("show")
def show(ctx: typer.Context, account_id: IdArg, json_out: JsonOpt = False) -> None:
    """Show one account."""
    with errors_to_exit():
        account = state(ctx).app().accounts.get(account_id)
    if json_out:
        print_json(account_dict(account))
    else:
        console.print(account_details(account))


@app.command("edit")
def edit(
    ctx: typer.Context,
    account_id: IdArg,
    owner: Annotated[str | None, typer.Option()] = None,
    host: Annotated[str | None, typer.Option()] = None,
    username: Annotated[str | None, typer.Option()] = None,
    protocol: Annotated[Protocol | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    security: Annotated[Security | None, typer.Option()] = None,
    ca_file: Annotated[str | None, typer.Option(help="'' to remove.")] = None,
    verify_cert: Annotated[bool | None, typer.Option("--verify-cert/--no-verify-cert")] = None,
    password_stdin: PasswordStdin = False,
    password: PasswordRefused = None,
    folder: FoldersOpt = None,
    keep: Annotated[bool | None, typer.Option("--keep/--no-keep")] = None,
    fetchall: Annotated[bool | None, typer.Option("--fetchall/--no-fetchall")] = None,
    flush: Annotated[bool | None, typer.Option("--flush/--no-flush")] = None,
    deliver_to: Annotated[str | None, typer.Option(help="'' to deliver to the owner.")] = None,
    interval: Annotated[int | None, typer.Option()] = None,
    max_size: Annotated[int | None, typer.Option()] = None,
    json_out: JsonOpt = False,
) -> None:
    """Change an account's settings (only the options given)."""
    _refuse_password_flag(password)
    with errors_to_exit():
        service = state(ctx).app().accounts
        spec = service.get(account_id).spec
        opts = spec.options
        new_protocol = protocol or spec.protocol
        new_security = security or spec.security
        if port is None and (protocol or security):
            old_default = default_port(spec.protocol, spec.security)
            port = default_port(new_protocol, new_security) if spec.port == old_default else None
        new = replace(
            spec,
            owner=owner if owner is not None else spec.owner,
            host=host if host is not None else spec.host,
            username=username if username is not None else spec.username,
            protocol=new_protocol,
            security=new_security,
            port=port if port is not None else spec.port,
            ca_file=(ca_file or None) if ca_file is not None else spec.ca_file,
            verify_cert=verify_cert if verify_cert is not None else spec.verify_cert,
            deliver_to=deliver_to if deliver_to is not None else spec.deliver_to,
            interval=interval if interval is not None else spec.interval,
            options=RetrievalOptions(
                keep=keep if keep is not None else opts.keep,
                fetchall=fetchall if fetchall is not None else opts.fetchall,
                flush=flush if flush is not None else opts.flush,
                max_size=max_size if max_size is not None else opts.max_size,
                folders=tuple(folder) if folder else opts.folders,
            ),
        )
        account = service.edit(account_id, new, read_password_stdin() if password_stdin else None)
    if json_out:
        print_json(account_dict(account))
    else:
        console.print(f"account {account.id} updated")


@app.command("delete")
def delete(
    ctx: typer.Context,
    account_id: IdArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete an account and its history. Mail already delivered stays where it is."""
    with errors_to_exit():
        service = state(ctx).app().accounts
        account = service.get(account_id)
        if not yes:
            question = f"Delete account {account.id} ({account.spec.username}@{account.spec.host})?"
            if not typer.confirm(question):
                raise typer.Exit(1)
        service.delete(account_id)
    console.print(f"account {account_id} deleted")


def _set_active(ctx: typer.Context, account_id: int, active: bool) -> None:
    with errors_to_exit():
        state(ctx).app().accounts.set_active(account_id, active)
    console.print(f"account {account_id} {'enabled' if active else 'disabled'}")


@app.command("enable")
def enable(ctx: typer.Context, account_id: IdArg) -> None:
    """Switch polling on (due at once; earlier failures forgiven)."""
    _set_active(ctx, account_id, True)


@app.command("disable")
def disable(ctx: typer.Context, account_id: IdArg) -> None:
    """Switch polling off."""
    _set_active(ctx, account_id, False)
