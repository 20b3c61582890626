"""`mailhaul db`: the database schema (Alembic migrations)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mailhaul.cli.base import Group, json_option
from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import print_json

if TYPE_CHECKING:
    from mailhaul.bootstrap import App

app = Group("db", help="The database schema: upgrade it, show its revision.")


def _app(ctx: click.Context) -> App:
    from mailhaul.bootstrap import App

    cli = state(ctx)
    settings = cli.settings()
    if settings.database_url.startswith("sqlite"):
        # the home's own database: `mailhaul init` makes it (mode 0600); an old schema has
        # no settings table yet, so the stored settings are not read
        return cli.app(stored_settings=False)
    # A server database can be prepared before any home exists (no key file needed).
    return App(settings)


@app.command()
@json_option
@click.pass_context
def upgrade(ctx: click.Context, json_out: bool) -> None:
    """Upgrade the schema to this mailhaul's revision (a database from before
    migrations is recognised and stamped). Run it after installing a new mailhaul,
    before restarting `serve`/`worker` processes that share a PostgreSQL database."""
    with errors_to_exit():
        db = _app(ctx).db
        try:
            before = db.schema_state()
            after = db.upgrade()
        finally:
            db.dispose()
    if json_out:
        print_json({"database": db.safe_url, "from": before.current, "to": after.current})
    elif before.current == after.current:
        print(f"database schema already at revision {after.current}")
    else:
        was = before.current or ("pre-migrations" if before.legacy else "empty")
        print(f"database schema upgraded: {was} -> {after.current}")


@app.command()
@json_option
@click.pass_context
def current(ctx: click.Context, json_out: bool) -> None:
    """Print the schema's revision and whether it is this mailhaul's (head)."""
    with errors_to_exit():
        db = _app(ctx).db
        try:
            found = db.schema_state()
        finally:
            db.dispose()
    if json_out:
        print_json(
            {
                "database": db.safe_url,
                "current": found.current,
                "head": found.head,
                "up_to_date": found.up_to_date,
            }
        )
        return
    if found.up_to_date:
        print(f"{found.current} (head)")
    elif found.empty:
        print(f"none: no schema yet (head {found.head}); run `mailhaul db upgrade`")
    elif found.legacy:
        print(f"none: created before migrations (head {found.head}); run `mailhaul db upgrade`")
    else:
        print(f"{found.current} (head is {found.head}); run `mailhaul db upgrade`")
