"""`mailhaul user …`: the people who log in to the web UI and API, and their API keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mailhaul.cli.base import EnumChoice, Group, json_option
from mailhaul.cli.context import errors_to_exit, read_password_stdin, state
from mailhaul.cli.output import details, print_json, print_table, shown_value, table, when
from mailhaul.domain.access import Principal, Role

if TYPE_CHECKING:
    from rich.table import Table

    from mailhaul.adapters.db.users import ApiKey, User
    from mailhaul.services.users import UserService

app = Group("user", help="Manage the users of the web UI and API.")
key_app = Group("key", help="Manage a user's API keys.")
app.add_command(key_app)

user_argument = click.argument("who", help="The user's login (or numeric id).")
domain_option = click.option(
    "--domain", multiple=True, help="A domain a domain admin manages (repeatable)."
)
password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (first line). Prompts on a terminal.",
)
CLI = Principal.system()


def generated_password() -> str:
    """A random password to print once."""
    import secrets

    return secrets.token_urlsafe(15)


def _users(ctx: click.Context) -> UserService:
    return state(ctx).app().users


def _find(users: UserService, who: str) -> User:
    if who.isdigit():
        return users.get(CLI, int(who))
    return users.by_login(CLI, who)


def _user_table(rows: list[User]) -> Table:
    return table(
        ("id", "login", "role", "domains", "active", "last login"),
        (
            (
                str(user.id),
                user.login,
                str(user.role),
                ", ".join(sorted(user.domains)) or "-",
                "yes" if user.active else "no",
                when(user.last_login_at),
            )
            for user in rows
        ),
    )


@app.command("add")
@click.argument("login", help="A mailbox address (an admin may use a name).")
@click.option("--role", type=EnumChoice(Role), default="user", help="admin, domain_admin or user.")
@domain_option
@password_stdin_option
@json_option
@click.pass_context
def add(
    ctx: click.Context,
    login: str,
    role: Role,
    domain: tuple[str, ...],
    password_stdin: bool,
    json_out: bool,
) -> None:
    """Add a user; without --password-stdin a password is generated and printed once."""
    password = read_password_stdin() if password_stdin else generated_password()
    with errors_to_exit():
        user = _users(ctx).add(CLI, login, role, password, list(domain))
    if json_out:
        data = user.as_dict()
        if not password_stdin:
            data["password"] = password
        print_json(data)
        return
    print(user.id)
    if not password_stdin:
        print(f"password for {user.login} (shown only now): {password}")


@app.command("list")
@json_option
@click.pass_context
def list_users(ctx: click.Context, json_out: bool) -> None:
    """List the users."""
    with errors_to_exit():
        rows = _users(ctx).list_users(CLI)
    if json_out:
        print_json([user.as_dict() for user in rows])
    else:
        print_table(_user_table(rows))


@app.command("show")
@user_argument
@json_option
@click.pass_context
def show(ctx: click.Context, who: str, json_out: bool) -> None:
    """Show one user."""
    with errors_to_exit():
        user = _find(_users(ctx), who)
    if json_out:
        print_json(user.as_dict())
    else:
        print_table(details([(k, shown_value(k, v)) for k, v in user.as_dict().items()]))


@app.command("edit")
@user_argument
@click.option("--role", type=EnumChoice(Role), help="A new role.")
@domain_option
@password_stdin_option
@click.option("--enable/--disable", "active", default=None, help="Allow or stop logins.")
@json_option
@click.pass_context
def edit(
    ctx: click.Context,
    who: str,
    role: Role | None,
    domain: tuple[str, ...],
    password_stdin: bool,
    active: bool | None,
    json_out: bool,
) -> None:
    """Change a user's role, domains, password or whether they may log in."""
    from mailhaul.services.users import UserChanges

    password = read_password_stdin() if password_stdin else None
    with errors_to_exit():
        users = _users(ctx)
        user = _find(users, who)
        changes = UserChanges(
            role=role, domains=list(domain) or None, password=password, active=active
        )
        user = users.edit(CLI, user.id, changes)
    if json_out:
        print_json(user.as_dict())
    else:
        print(f"user {user.login} updated")


@app.command("delete")
@user_argument
@click.pass_context
def delete(ctx: click.Context, who: str) -> None:
    """Delete a user with their sessions and API keys (their accounts stay)."""
    with errors_to_exit():
        users = _users(ctx)
        user = _find(users, who)
        users.delete(CLI, user.id)
    print(f"user {user.login} deleted")


def _key_table(rows: list[ApiKey], logins: dict[int, str]) -> Table:
    return table(
        ("id", "user", "name", "starts with", "created", "last used"),
        (
            (
                str(key.id),
                logins.get(key.user_id, str(key.user_id)),
                key.name,
                key.prefix + "…",
                when(key.created_at),
                when(key.last_used_at),
            )
            for key in rows
        ),
    )


@key_app.command("create")
@user_argument
@click.option("--name", required=True, help="What the key is for, e.g. 'osTicket cron'.")
@json_option
@click.pass_context
def key_create(ctx: click.Context, who: str, name: str, json_out: bool) -> None:
    """Create an API key for a user; the key is printed only now."""
    with errors_to_exit():
        users = _users(ctx)
        user = _find(users, who)
        key, secret = users.create_key(CLI, user.id, name)
    if json_out:
        print_json(key.as_dict() | {"key": secret})
        return
    print(f"API key {key.id} for {user.login} (shown only now):")
    print(secret)


@key_app.command("list")
@click.argument("who", required=False, help="Only this user's keys.")
@json_option
@click.pass_context
def key_list(ctx: click.Context, who: str | None, json_out: bool) -> None:
    """List API keys (never the keys themselves)."""
    with errors_to_exit():
        users = _users(ctx)
        user_id = _find(users, who).id if who else 0
        rows = users.keys(CLI, user_id)
        logins = {user.id: user.login for user in users.list_users(CLI)}
    if json_out:
        print_json([key.as_dict() | {"login": logins.get(key.user_id)} for key in rows])
    else:
        print_table(_key_table(rows, logins))


@key_app.command("revoke")
@click.argument("key_id", type=int, help="The key's id (see `user key list`).")
@click.pass_context
def key_revoke(ctx: click.Context, key_id: int) -> None:
    """Revoke an API key at once."""
    with errors_to_exit():
        _users(ctx).revoke_key(CLI, key_id)
    print(f"API key {key_id} revoked")
