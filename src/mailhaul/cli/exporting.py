"""`mailhaul export`: every account with its options and retrieval state, as JSON (the
passwords only encrypted to a passphrase)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mailhaul.cli.context import errors_to_exit, fail, state
from mailhaul.cli.importing import read_passphrase


@click.command()
@click.option(
    "--json",
    "json_out",
    is_flag=True,
    default=True,
    flag_value=True,
    help="JSON (the only format).",
)
@click.option(
    "--with-passwords",
    is_flag=True,
    help="Include passwords, encrypted to a passphrase read from stdin.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Write here (mode 0600), not stdout.",
)
@click.pass_context
def export(ctx: click.Context, json_out: bool, with_passwords: bool, output: Path | None) -> None:
    """Export every account with its options and retrieval state, as JSON."""
    from mailhaul.services.export import export_data

    del json_out
    passphrase = read_passphrase(confirm=True) if with_passwords else None
    with errors_to_exit():
        app_ = state(ctx).app()
        data = export_data(app_.accounts, passphrase=passphrase)
    text = json.dumps(data, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    sys.stderr.write(f"exported {len(data['accounts'])} account(s) to {output}\n")
