"""`mailhaul init`: the data directory, key file, settings file, database and first admin."""

from __future__ import annotations

import click

from mailhaul.cli.context import errors_to_exit, read_password_stdin, state


@click.command()
@click.option(
    "--admin-login",
    default="admin",
    help="Login of the first admin (made when there are no users).",
)
@click.option(
    "--admin-password-stdin",
    is_flag=True,
    help="Read the first admin's password from standard input (default: generate "
    "one and print it once).",
)
@click.pass_context
def init(ctx: click.Context, admin_login: str, admin_password_stdin: bool) -> None:
    """Create the data directory, key file, settings file, database and first admin.

    Idempotent: what exists is left as it is.
    """
    from mailhaul.bootstrap import init_home
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
        print(f"created {path}")
    print(f"mailhaul home: {settings.home}")
    print(f"database:      {settings.database_url}")
    print(f"maildirs:      {settings.maildir_path}")
    if first_admin:
        print(f"web admin:     {admin_login}")
        if not admin_password_stdin:
            print(f"password:      {password}   (shown only now)")
    elif admin_password_stdin:
        print("users exist already: the admin password was not changed")
