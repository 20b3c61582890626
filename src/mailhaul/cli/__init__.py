"""The `mailhaul` command line (click).

Every invocation imports this module, so it stays cheap: the commands live in their own
modules, imported only when one of their commands runs (or its help is asked for), and
`mailhaul --help` lists them from the short help strings below.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailhaul import __version__
from mailhaul.cli.base import LazyGroup
from mailhaul.cli.context import CliState

# name: ("module:attribute", short help); the short help must be the command's own (a unit
# test compares them). In this order in `mailhaul --help`.
COMMANDS = {
    "init": (
        "mailhaul.cli.setup:init",
        "Create the data directory, key file, settings file, database and first admin.",
    ),
    "fetch": (
        "mailhaul.cli.fetching:fetch",
        "Poll accounts now; exits 0 only if every one ran without error.",
    ),
    "log": ("mailhaul.cli.history:log", "Print the last run's log."),
    "runs": (
        "mailhaul.cli.history:runs",
        "Show the run history: time, result, messages, bytes, duration.",
    ),
    "refused": (
        "mailhaul.cli.history:refused",
        "List messages the local backend refused for good (they stay on the server).",
    ),
    "retry": (
        "mailhaul.cli.history:retry",
        "Try refused messages again on the next run (and make the account due now).",
    ),
    "incidents": (
        "mailhaul.cli.incidents_cmd:incidents",
        "List accounts' incidents (open ones; --all: the history too) and their notices.",
    ),
    "quarantine": (
        "mailhaul.cli.quarantine_cmd:app",
        "List, release or delete infected messages kept out of the mailboxes.",
    ),
    "status": (
        "mailhaul.cli.status:status",
        "Show the service at a glance: accounts by state, queue lag, workers, each account.",
    ),
    "serve": (
        "mailhaul.cli.service:serve",
        "Run the service: poll every active account on its interval until stopped.",
    ),
    "worker": (
        "mailhaul.cli.service:worker",
        "Run only the scheduler (more of them share the work on PostgreSQL).",
    ),
    "account": (
        "mailhaul.cli.accounts:app",
        "Manage the remote POP3/IMAP accounts mailhaul polls.",
    ),
    "import": (
        "mailhaul.cli.importing:app",
        "Import accounts from fetchmail, getmail, panel rules, ISPConfig or a mailhaul export.",
    ),
    "export": (
        "mailhaul.cli.exporting:export",
        "Export every account with its options and retrieval state, as JSON.",
    ),
    "db": ("mailhaul.cli.db:app", "The database schema: upgrade it, show its revision."),
    "user": ("mailhaul.cli.users:app", "Manage the users of the web UI and API."),
    "settings": (
        "mailhaul.cli.settings_cmd:app",
        "Show and change the settings an admin may edit (also in the web UI).",
    ),
    "oauth": (
        "mailhaul.cli.oauth_cmd:app",
        "Manage the OAuth2 providers accounts sign in through.",
    ),
    "key": (
        "mailhaul.cli.key_cmd:app",
        "Manage the key that encrypts stored passwords and OAuth secrets.",
    ),
}


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        print(f"mailhaul {__version__}")
        ctx.exit()


def _main_options(
    home: Path | None,
    database_url: str | None,
    maildir_path: str | None,
    verbose: bool,
) -> None:
    """mailhaul: fetch mail from POP3/IMAP accounts into local mailboxes."""
    import logging

    click.get_current_context().obj = CliState(
        home=home,
        overrides={"database.url": database_url, "delivery.maildir_path": maildir_path},
        verbose=verbose,
    )
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


app = LazyGroup(
    "mailhaul",
    lazy=COMMANDS,
    callback=_main_options,
    help="mailhaul: fetch mail from POP3/IMAP accounts into local mailboxes.",
    epilog=(
        "Exit codes: 0 success; 1 an account's run failed; 2 bad command line, settings or "
        "input, or a database mailhaul cannot use; 3 no such account (or run, user, API key, "
        "OAuth provider, quarantined message); 4 the account is being polled by another "
        "process; 5 the account is disabled, paused or waiting for an OAuth2 sign-in "
        "(nothing polled)."
    ),
    context_settings={"show_default": True, "max_content_width": 120},
    params=[
        click.Option(
            ["--home"],
            type=click.Path(path_type=Path),
            help="Data directory [env MAILHAUL_HOME; default ~/.local/share/mailhaul].",
        ),
        click.Option(["--database-url"], help="Database URL [env MAILHAUL_DATABASE_URL]."),
        click.Option(
            ["--maildir-path"], help="Maildir template, e.g. '{home}/mail/{domain}/{local}'."
        ),
        click.Option(["--verbose", "-v"], is_flag=True, help="Log what happens."),
        click.Option(
            ["--version"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_version,
            help="Show version.",
        ),
    ],
)


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
