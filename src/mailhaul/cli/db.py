"""`mailhaul db`: the database schema (Alembic migrations)."""

from __future__ import annotations

from typing import Annotated

import typer

from mailhaul.bootstrap import App
from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import console, print_json

app = typer.Typer(help="The database schema: upgrade it, show its revision.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _app(ctx: typer.Context) -> App:
    cli = state(ctx)
    settings = cli.settings()
    if settings.database_url.startswith("sqlite"):
        # the home's own database: `mailhaul init` makes it (mode 0600); an old schema has
        # no settings table yet, so the stored settings are not read
        return cli.app(stored_settings=False)
    # A server database can be prepared before any home exists (no key file needed).
    return App(settings)


@app.command()
def upgrade(ctx: typer.Context, json_out: JsonOpt = False) -> None:
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
        console.print(f"database schema already at revision {after.current}")
    else:
        was = before.current or ("pre-migrations" if before.legacy else "empty")
        console.print(f"database schema upgraded: {was} -> {after.current}")


@app.command()
def current(ctx: typer.Context, json_out: JsonOpt = False) -> None:
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
        console.print(f"{found.current} (head)")
    elif found.empty:
        console.print(f"none: no schema yet (head {found.head}); run `mailhaul db upgrade`")
    elif found.legacy:
        console.print(
            f"none: created before migrations (head {found.head}); run `mailhaul db upgrade`"
        )
    else:
        console.print(f"{found.current} (head is {found.head}); run `mailhaul db upgrade`")
