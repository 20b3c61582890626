"""`mailhaul user …`: the people who log in to the web UI and API, and their API keys."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer
from rich.table import Table

from mailhaul.adapters.db.users import ApiKey, User
from mailhaul.cli.context import errors_to_exit, read_password_stdin, state
from mailhaul.cli.output import console, print_json
from mailhaul.domain.access import Principal, Role
from mailhaul.services.users import UserService

app = typer.Typer(help="Manage the users of the web UI and API.", no_args_is_help=True)
key_app = typer.Typer(help="Manage a user's API keys.", no_args_is_help=True)
app.add_typer(key_app, name="key")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UserArg = Annotated[str, typer.Argument(help="The user's login (or numeric id).")]
DomainOpt = Annotated[
    list[str] | None,
    typer.Option("--domain", help="A domain a domain admin manages (repeatable)."),
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from standard input (first line). Prompts on a terminal.",
    ),
]
CLI = Principal.system()


def generated_password() -> str:
    """A random password to print once."""
    return secrets.token_urlsafe(15)


def _users(ctx: typer.Context) -> UserService:
    return state(ctx).app().users


def _find(users: UserService, who: str) -> User:
    if who.isdigit():
        return users.get(CLI, int(who))
    return users.by_login(CLI, who)


def _user_table(rows: list[User]) -> Table:
    table = Table("id", "login", "role", "domains", "active", "last login")
    for user in rows:
        table.add_row(
            str(user.id),
            user.login,
            str(user.role),
            ", ".join(sorted(user.domains)),
            "yes" if user.active else "no",
            _when(user.last_login_at),
        )
    return table


def _when(value: float | None) -> str:
    import time

    return "-" if value is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(value))


@app.command("add")
def add(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(help="A mailbox address (an admin may use a name).")],
    role: Annotated[Role, typer.Option(help="admin, domain_admin or user.")] = Role.USER,
    domain: DomainOpt = None,
    password_stdin: PasswordStdin = False,
    json_out: JsonOpt = False,
) -> None:
    """Add a user; without --password-stdin a password is generated and printed once."""
    password = read_password_stdin() if password_stdin else generated_password()
    with errors_to_exit():
        user = _users(ctx).add(CLI, login, role, password, domain or [])
    if json_out:
        data = user.as_dict()
        if not password_stdin:
            data["password"] = password
        print_json(data)
        return
    print(user.id)
    if not password_stdin:
        console.print(f"password for {user.login} (shown only now): {password}")


@app.command("list")
def list_users(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the users."""
    with errors_to_exit():
        rows = _users(ctx).list_users(CLI)
    if json_out:
        print_json([user.as_dict() for user in rows])
    else:
        console.print(_user_table(rows))


@app.command("show")
def show(ctx: typer.Context, who: UserArg, json_out: JsonOpt = False) -> None:
    """Show one user."""
    with errors_to_exit():
        user = _find(_users(ctx), who)
    if json_out:
        print_json(user.as_dict())
    else:
        console.print(_user_table([user]))


@app.command("edit")
def edit(
    ctx: typer.Context,
    who: UserArg,
    role: Annotated[Role | None, typer.Option(help="A new role.")] = None,
    domain: DomainOpt = None,
    password_stdin: PasswordStdin = False,
    active: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Allow or stop logins.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Change a user's role, domains, password or whether they may log in."""
    password = read_password_stdin() if password_stdin else None
    with errors_to_exit():
        users = _users(ctx)
        user = _find(users, who)
        user = users.edit(CLI, user.id, role=role, domains=domain, password=password, active=active)
    if json_out:
        print_json(user.as_dict())
    else:
        console.print(f"user {user.login} updated")


@app.command("delete")
def delete(ctx: typer.Context, who: UserArg) -> None:
    """Delete a user with their sessions and API keys (their accounts stay)."""
    with errors_to_exit():
        users = _users(ctx)
        user = _find(users, who)
        users.delete(CLI, user.id)
    console.print(f"user {user.login} deleted")


def _key_table(rows: list[ApiKey], logins: dict[int, str]) -> Table:
    table = Table("id", "user", "name", "starts with", "created", "last used")
    for key in rows:
        table.add_row(
            str(key.id),
            logins.get(key.user_id, str(key.user_id)),
            key.name,
            key.prefix + "…",
            _when(key.created_at),
            _when(key.last_used_at),
        )
    return table


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    who: UserArg,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'osTicket cron'.")],
    json_out: JsonOpt = False,
) -> None:
    """Create an API key for a user; the key is printed only now."""
    with errors_to_exit():
        users = _users(ctx)
        user = _find(users, who)
        key, secret = users.create_key(CLI, user.id, name)
    if json_out:
        print_json(key.as_dict() | {"key": secret})
        return
    console.print(f"API key {key.id} for {user.login} (shown only now):")
    print(secret)


@key_app.command("list")
def key_list(
    ctx: typer.Context,
    who: Annotated[str | None, typer.Argument(help="Only this user's keys.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List API keys (never the keys themselves)."""
    with errors_to_exit():
        users = _users(ctx)
        user_id = _find(users, who).id if who else 0
        rows = users.keys(CLI, user_id)
        logins = {user.id: user.login for user in users.list_users(CLI)}
    if json_out:
        print_json([key.as_dict() | {"login": logins.get(key.user_id)} for key in rows])
    else:
        console.print(_key_table(rows, logins))


@key_app.command("revoke")
def key_revoke(
    ctx: typer.Context,
    key_id: Annotated[int, typer.Argument(help="The key's id (see `user key list`).")],
) -> None:
    """Revoke an API key at once."""
    with errors_to_exit():
        _users(ctx).revoke_key(CLI, key_id)
    console.print(f"API key {key_id} revoked")
