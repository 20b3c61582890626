"""`mailhaul account …`: add, list, show, edit, delete, enable, disable, resume."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from mailhaul.cli.account_connect import connect
from mailhaul.cli.account_folders import RulesChange, folder_rule_options, folders
from mailhaul.cli.account_retention import RetentionChange, retention_options
from mailhaul.cli.account_switches import disable, enable, resume
from mailhaul.cli.base import EnumChoice, Group, Size, filter_options, json_option
from mailhaul.cli.context import errors_to_exit, fail, read_password_stdin, state
from mailhaul.cli.output import account_dict, print_json, print_table
from mailhaul.domain.filtering import (
    FilterOptions,
    SpamAction,
    VirusAction,
    spam_action,
    virus_action,
)
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import (
    Protocol,
    RetrievalOptions,
    Security,
    SignInMethod,
    default_port,
)

app = Group("account", help="Manage the remote POP3/IMAP accounts mailhaul polls.")

id_argument = click.argument("account_id", type=int, help="The account's id.")
password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (first line). Prompts on a terminal.",
)
password_refused_option = click.option(
    "--password", hidden=True, help="Refused: use --password-stdin."
)
folder_option = click.option(
    "--folder", multiple=True, help="IMAP folder to poll (repeatable; default INBOX)."
)


def _refuse_password_flag(password: str | None) -> None:
    if password is not None:
        fail(
            "a password on the command line would leak into `ps` and shell history: "
            "pipe it in with --password-stdin"
        )


def _check_numbers(port: int | None, max_size: int | None) -> None:
    """The rules the web form and the API apply too, before the options are built."""
    from mailhaul.domain.validation import check_max_size, check_port

    if port is not None:
        check_port(port)
    if max_size is not None:
        check_max_size(max_size)


@app.command("add")
@click.option("--owner", required=True, help="Local address of the user who owns the account.")
@click.option(
    "--host",
    help="The POP3/IMAP server's host name (with a preset OAuth2 provider: its server).",
)
@click.option("--username", required=True, help="Login name on the remote server.")
@click.option(
    "--protocol",
    type=EnumChoice(Protocol),
    default="imap",
    help="imap (the default, as in the web form) or pop3.",
)
@click.option("--port", type=int, help="Default: 110/995 (POP3), 143/993 (IMAP).")
@click.option(
    "--security",
    type=EnumChoice(Security),
    default="ssl",
    help="ssl (implicit TLS), starttls, or none (in clear).",
)
@click.option("--ca-file", help="Trust this CA file (PEM).")
@click.option("--no-verify-cert", is_flag=True, help="Do not check the certificate (logged).")
@password_stdin_option
@password_refused_option
@folder_option
@click.option("--keep/--no-keep", default=False, help="Leave messages on the server.")
@click.option(
    "--fetchall/--no-fetchall",
    default=False,
    help="Also fetch messages already read (\\Seen); each once.",
)
@click.option("--flush/--no-flush", default=False, help="Delete old messages before fetching.")
@click.option("--deliver-to", help="Local address to deliver to (default: the owner).")
@click.option("--interval", type=int, help="Seconds between polls.")
@click.option(
    "--max-size",
    type=Size(),
    help="Leave messages larger than this on the server: bytes, or 10M, 512K, 1G (1 byte "
    "to 1 TiB). Default: poll.max_size.",
)
@click.option("--inactive", is_flag=True, help="Add it switched off.")
@click.option(
    "--auth",
    type=EnumChoice(SignInMethod),
    default="password",
    help="password, or oauth2 (with --oauth-provider; no password: connect it after).",
)
@click.option(
    "--oauth-provider",
    help="With --auth oauth2: the provider's name (see `mailhaul oauth provider list`).",
)
@click.option(
    "--push/--no-push",
    default=None,
    help="IMAP: new mail within seconds through IDLE while serve runs. Default: push.enabled.",
)
@folder_rule_options
@retention_options
@filter_options
@json_option
@click.pass_context
def add(
    ctx: click.Context,
    owner: str,
    host: str | None,
    username: str,
    protocol: Protocol,
    port: int | None,
    security: Security,
    ca_file: str | None,
    no_verify_cert: bool,
    password_stdin: bool,
    password: str | None,
    folder: tuple[str, ...],
    keep: bool,
    fetchall: bool,
    flush: bool,
    deliver_to: str | None,
    interval: int | None,
    max_size: int | None,
    inactive: bool,
    auth: SignInMethod,
    oauth_provider: str | None,
    antispam: SpamAction | None,
    antivirus: VirusAction | None,
    push: bool | None,
    json_out: bool,
    folder_rules: RulesChange,
    retention: RetentionChange,
) -> None:
    """Add an account; prints its id (or, with --json, the account)."""
    from mailhaul.domain.account import AccountSpec

    _refuse_password_flag(password)
    oauth = auth is SignInMethod.OAUTH2
    if oauth and password_stdin:
        fail("an account signing in with OAuth2 has no password: leave out --password-stdin")
    if oauth and not oauth_provider:
        fail("--auth oauth2 needs --oauth-provider NAME (see `mailhaul oauth provider list`)")
    if oauth_provider and not oauth:
        fail("--oauth-provider goes with --auth oauth2")
    if not oauth and not password_stdin:
        fail("the account needs a password: pipe it in with --password-stdin")
    cli = state(ctx)
    with errors_to_exit():
        _check_numbers(port, max_size)
        app_ = cli.app()
        settings = app_.settings
        provider = app_.oauth_providers.get(oauth_provider) if oauth_provider else None
        provider_id = provider.id if provider else None
        if host is None and provider is not None and provider.preset is not None:
            from mailhaul.domain.oauth import PRESET_SERVERS

            hint = PRESET_SERVERS[provider.preset][protocol]
            host, security = hint.host, hint.security
            port = hint.port if port is None else port
        if host is None:
            fail("--host is needed (the POP3/IMAP server)")
        spec = AccountSpec(
            owner=owner,
            protocol=protocol,
            host=host,
            port=default_port(protocol, security) if port is None else port,
            security=security,
            username=username,
            verify_cert=not no_verify_cert,
            ca_file=ca_file,
            options=retention.applied(
                RetrievalOptions(
                    keep=keep,
                    fetchall=fetchall,
                    flush=flush,
                    max_size=settings.max_size if max_size is None else max_size,
                    folders=folder or ("INBOX",),
                    rules=folder_rules.applied(FolderRules()),
                )
            ),
            deliver_to=deliver_to or "",
            interval=settings.interval if interval is None else interval,
            active=not inactive,
            sign_in=auth,
            oauth_provider_id=provider_id,
            filters=FilterOptions(
                antispam or spam_action(settings.filters.antispam),
                antivirus or virus_action(settings.filters.antivirus),
            ),
            push=push,
        )
        account = app_.accounts.add(spec, None if oauth else read_password_stdin())
    if json_out:
        print_json(account_dict(account))
    else:
        print(account.id)
    if account.sign_in_problem is not None:
        sys.stderr.write(f"connect it to sign in: mailhaul account connect {account.id}\n")


@app.command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, json_out: bool) -> None:
    """List every account."""
    with errors_to_exit():
        app_ = state(ctx).app()
        accounts = app_.accounts.list_all()
        statuses = {status.id: status for status in app_.status.accounts()}
    if json_out:
        print_json([account_dict(a, statuses.get(a.id)) for a in accounts])
    elif accounts:
        from mailhaul.cli.output import accounts_table

        print_table(accounts_table(accounts, list(statuses.values())))
    else:
        print("no accounts yet: add one with `mailhaul account add`")


@app.command("show")
@id_argument
@json_option
@click.pass_context
def show(ctx: click.Context, account_id: int, json_out: bool) -> None:
    """Show one account."""
    with errors_to_exit():
        app_ = state(ctx).app()
        account = app_.accounts.get(account_id)
        status = app_.status.account(account_id)
    if json_out:
        print_json(account_dict(account, status))
    else:
        from mailhaul.cli.output import account_details

        print_table(account_details(account, status))


@app.command("edit")
@id_argument
@click.option("--owner", help="A new owner (local address).")
@click.option("--host", help="A new server (needs --password-stdin).")
@click.option("--username", help="A new login name on the server.")
@click.option("--protocol", type=EnumChoice(Protocol), help="imap or pop3.")
@click.option("--port", type=int, help="Left out: kept (a default port follows the protocol).")
@click.option("--security", type=EnumChoice(Security), help="ssl, starttls or none.")
@click.option("--ca-file", help="Trust this CA file (PEM); '' to remove.")
@click.option("--verify-cert/--no-verify-cert", default=None, help="Check the certificate.")
@password_stdin_option
@password_refused_option
@folder_option
@click.option("--keep/--no-keep", default=None, help="Leave messages on the server.")
@click.option("--fetchall/--no-fetchall", default=None, help="Also fetch messages already read.")
@click.option("--flush/--no-flush", default=None, help="Delete old messages before fetching.")
@click.option("--deliver-to", help="Local address to deliver to; '' for the owner.")
@click.option("--interval", type=int, help="Seconds between polls.")
@click.option("--max-size", type=Size(), help="Bytes, or 10M, 512K, 1G.")
@click.option("--push/--no-push", default=None, help="IMAP: push through IDLE, or poll only.")
@folder_rule_options
@retention_options
@filter_options
@json_option
@click.pass_context
def edit(
    ctx: click.Context,
    account_id: int,
    owner: str | None,
    host: str | None,
    username: str | None,
    protocol: Protocol | None,
    port: int | None,
    security: Security | None,
    ca_file: str | None,
    verify_cert: bool | None,
    password_stdin: bool,
    password: str | None,
    folder: tuple[str, ...],
    keep: bool | None,
    fetchall: bool | None,
    flush: bool | None,
    deliver_to: str | None,
    interval: int | None,
    max_size: int | None,
    antispam: SpamAction | None,
    antivirus: VirusAction | None,
    push: bool | None,
    json_out: bool,
    folder_rules: RulesChange,
    retention: RetentionChange,
) -> None:
    """Change an account's settings (only the options given)."""
    _refuse_password_flag(password)
    with errors_to_exit():
        _check_numbers(port, max_size)
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
            options=retention.applied(
                replace(
                    opts,
                    keep=keep if keep is not None else opts.keep,
                    fetchall=fetchall if fetchall is not None else opts.fetchall,
                    flush=flush if flush is not None else opts.flush,
                    max_size=max_size if max_size is not None else opts.max_size,
                    folders=folder if folder else opts.folders,
                    rules=folder_rules.applied(opts.rules),
                )
            ),
            filters=FilterOptions(
                antispam or spec.filters.antispam, antivirus or spec.filters.antivirus
            ),
            push=push if push is not None else spec.push,
        )
        account = service.edit(account_id, new, read_password_stdin() if password_stdin else None)
    if json_out:
        print_json(account_dict(account))
    else:
        print(f"account {account.id} updated")


@app.command("delete")
@id_argument
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.pass_context
def delete(ctx: click.Context, account_id: int, yes: bool) -> None:
    """Delete an account and its history. Mail already delivered stays where it is."""
    with errors_to_exit():
        service = state(ctx).app().accounts
        account = service.get(account_id)
        if not yes:
            question = f"Delete account {account.id} ({account.spec.username}@{account.spec.host})?"
            if not click.confirm(question):
                raise click.exceptions.Exit(1)
        service.delete(account_id)
    print(f"account {account_id} deleted")


for command in (enable, resume, disable):  # switching an account on and off
    app.add_command(command)
app.add_command(connect)  # `account connect` (OAuth2) lives in its own module
app.add_command(folders)  # `account folders`, with the folder options of add and edit
