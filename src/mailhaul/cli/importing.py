"""`mailhaul import …` (fetchmailrc, rules, getmailrc, ispconfig, json) and `mailhaul export`.

Exit codes: 0 every row imported (or unchanged); 1 some rows were skipped (each named with
file:line and why); 2 a file could not be read or parsed at all (nothing was imported).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailhaul.cli.base import Group
from mailhaul.cli.context import EXIT_USAGE, errors_to_exit, fail, state
from mailhaul.cli.output import print_json

if TYPE_CHECKING:
    from mailhaul.bootstrap import App
    from mailhaul.importers.common import ParseResult
    from mailhaul.services.import_state import OldmailState
    from mailhaul.services.importing import ImportDefaults, ImportSummary, StateFor

app = Group(
    "import",
    help="Import accounts from fetchmail, getmail, panel rules, ISPConfig or a mailhaul export.",
)

file_argument = click.argument(
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to import.",
)
owner_option = click.option(
    "--owner", help="Owner of accounts whose file names none (default: --deliver-to)."
)
deliver_to_option = click.option(
    "--deliver-to", help="Local address for accounts whose file names none."
)
oauth_provider_option = click.option(
    "--oauth-provider",
    help="The OAuth2 provider of accounts that sign in with OAuth2 on a server no preset "
    "provider names (imap.gmail.com and outlook.office365.com find theirs).",
)
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Print what would be created; change nothing."
)
json_option = click.option("--json", "json_out", is_flag=True, help="Print the summary as JSON.")
oldmail_option = click.option(
    "--oldmail",
    type=click.Path(path_type=Path),
    help="getmail's directory of oldmail-* files: its mail is not re-delivered.",
)


def read_text(path: Path) -> str:
    """A file's text (UTF-8, else Latin-1); exit 2 when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_passphrase(confirm: bool) -> str:
    """The passphrase: the first line of stdin (or asked twice on a terminal)."""
    if sys.stdin is None:
        fail("give the passphrase on standard input")
    if sys.stdin.isatty():
        import getpass

        phrase = getpass.getpass("Passphrase: ")
        if confirm and getpass.getpass("Again: ") != phrase:
            fail("the passphrases differ")
    else:
        phrase = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not phrase:
        fail("the passphrase is empty: give it on standard input")
    return phrase


def _defaults(
    app_: App,
    owner: str | None,
    deliver_to: str | None,
    local_domain: str | None,
    oauth_provider: str | None = None,
) -> ImportDefaults:
    from mailhaul.adapters.db.oauth_providers import OAuthProviderStore
    from mailhaul.domain.oauth import PRESET_SERVERS
    from mailhaul.services.importing import ImportDefaults

    settings = app_.settings
    from mailhaul.domain.filtering import FilterOptions, spam_action, virus_action

    store = OAuthProviderStore()
    with app_.db.read() as conn:
        providers = store.list_all(conn)
        chosen = store.get(conn, oauth_provider).id if oauth_provider else None
    hosts = {
        hint.host: provider.id
        for provider in providers
        if provider.preset is not None
        for hint in PRESET_SERVERS[provider.preset].values()
    }
    return ImportDefaults(
        owner=owner,
        deliver_to=deliver_to,
        local_domain=local_domain,
        interval=settings.interval,
        max_size=settings.max_size,
        maildir_template=settings.maildir_path,
        home=str(settings.home),
        oauth_hosts=hosts,
        oauth_provider=chosen,
        oauth_names={provider.name: provider.id for provider in providers},
        filters=FilterOptions(
            spam_action(settings.filters.antispam), virus_action(settings.filters.antivirus)
        ),
    )


def _run(
    ctx: click.Context,
    kind: str,
    parse: Callable[[], ParseResult],
    *,
    owner: str | None = None,
    deliver_to: str | None = None,
    local_domain: str | None = None,
    oauth_provider: str | None = None,
    dry_run: bool,
    json_out: bool,
    state_for: StateFor | None = None,
    unused: Callable[[], list[str]] | None = None,
) -> None:
    from mailhaul.services.importing import ImportService

    with errors_to_exit():
        app_ = state(ctx).app()
        parsed = parse()
        defaults = _defaults(app_, owner, deliver_to, local_domain, oauth_provider)
        service = ImportService(app_.accounts)
        summary = service.apply(kind, parsed, defaults, dry_run=dry_run, state_for=state_for)
        if unused is not None:
            summary.notes.extend(unused())
    show_summary(summary, json_out)
    ctx.exit(1 if summary.count("skipped") else 0)


def show_summary(summary: ImportSummary, json_out: bool) -> None:
    """The summary for people (one line per account, notes indented) or as JSON."""
    if json_out:
        print_json(summary.to_dict())
        return
    verbs = {
        "created": "would create" if summary.dry_run else "created",
        "updated": "would update" if summary.dry_run else "updated",
        "unchanged": "unchanged",
        "skipped": "skipped",
    }
    lines: list[str] = []
    for o in summary.outcomes:
        ident = f"#{o.account_id} " if o.account_id is not None else ""
        if o.action == "skipped":
            lines.append(f"skipped       {o.source}: {o.reason}")
        else:
            lines.append(f"{verbs[o.action]:<13} {ident}{o.description}  ({o.source})")
        lines.extend(f"    note: {note}" for note in o.notes)
    lines.extend(f"note: {note}" for note in summary.notes)
    seen = sum(o.seen for o in summary.outcomes)
    counts = ", ".join(f"{summary.count(a)} {verbs[a]}" for a in verbs)
    tail = " (dry run: nothing was written)" if summary.dry_run else ""
    lines.append(f"{summary.kind}: {counts}; {seen} message(s) already delivered{tail}")
    sys.stdout.write("\n".join(lines) + "\n")


@app.command("fetchmailrc")
@file_argument
@click.option(
    "--fetchids",
    type=click.Path(path_type=Path),
    help="fetchmail's .fetchids: its POP3 mail is not re-delivered.",
)
@click.option("--local-domain", help="Domain for local names without @ (`is petrov here`).")
@owner_option
@deliver_to_option
@oauth_provider_option
@dry_run_option
@json_option
@click.pass_context
def fetchmailrc(
    ctx: click.Context,
    file: Path,
    fetchids: Path | None,
    local_domain: str | None,
    owner: str | None,
    deliver_to: str | None,
    oauth_provider: str | None,
    dry_run: bool,
    json_out: bool,
) -> None:
    """Import a fetchmail run-control file (~/.fetchmailrc)."""
    from mailhaul.importers.fetchmailrc import parse_fetchmailrc
    from mailhaul.services.import_state import FetchidsState

    text = read_text(file)
    ids = FetchidsState(read_text(fetchids), str(fetchids)) if fetchids else None
    _run(
        ctx,
        "fetchmailrc",
        lambda: parse_fetchmailrc(text, str(file)),
        owner=owner,
        deliver_to=deliver_to,
        local_domain=local_domain,
        oauth_provider=oauth_provider,
        dry_run=dry_run,
        json_out=json_out,
        state_for=ids,
        unused=ids.unused if ids else None,
    )


@app.command("rules")
@file_argument
@owner_option
@deliver_to_option
@dry_run_option
@json_option
@click.pass_context
def rules(
    ctx: click.Context,
    file: Path,
    owner: str | None,
    deliver_to: str | None,
    dry_run: bool,
    json_out: bool,
) -> None:
    """Import panel rules: `server:proto user password local@domain [keep] [ssl] [fetchall]
    [flush]`, one account per line."""
    from mailhaul.importers.rules import parse_rules

    text = read_text(file)
    _run(
        ctx,
        "rules",
        lambda: parse_rules(text, str(file)),
        owner=owner,
        deliver_to=deliver_to,
        dry_run=dry_run,
        json_out=json_out,
    )


def _oldmail(directory: Path | None) -> OldmailState | None:
    from mailhaul.services.import_state import OldmailState

    if directory is None:
        return None
    if not directory.is_dir():
        fail(f"{directory} is not a directory (give getmail's directory of oldmail-* files)")
    return OldmailState(directory)


@app.command("getmailrc")
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
    help="getmail rc files.",
)
@oldmail_option
@owner_option
@deliver_to_option
@oauth_provider_option
@dry_run_option
@json_option
@click.pass_context
def getmailrc(
    ctx: click.Context,
    files: tuple[Path, ...],
    oldmail: Path | None,
    owner: str | None,
    deliver_to: str | None,
    oauth_provider: str | None,
    dry_run: bool,
    json_out: bool,
) -> None:
    """Import getmail6 rc files (one retriever each)."""
    from mailhaul.importers.common import ParseResult
    from mailhaul.importers.getmailrc import parse_getmailrc

    texts = [(read_text(path), str(path)) for path in files]
    seen = _oldmail(oldmail)

    def parse() -> ParseResult:
        merged = ParseResult()
        for text, name in texts:
            one = parse_getmailrc(text, name)
            merged.accounts += one.accounts
            merged.problems += one.problems
        return merged

    _run(
        ctx,
        "getmailrc",
        parse,
        owner=owner,
        deliver_to=deliver_to,
        oauth_provider=oauth_provider,
        dry_run=dry_run,
        json_out=json_out,
        state_for=seen,
        unused=seen.unused if seen else None,
    )


@app.command("ispconfig")
@file_argument
@oldmail_option
@owner_option
@deliver_to_option
@dry_run_option
@json_option
@click.pass_context
def ispconfig(
    ctx: click.Context,
    file: Path,
    oldmail: Path | None,
    owner: str | None,
    deliver_to: str | None,
    dry_run: bool,
    json_out: bool,
) -> None:
    """Import rows of ISPConfig's mail_get table (CSV with a header, or a mysqldump)."""
    from mailhaul.importers.ispconfig import parse_ispconfig

    text = read_text(file)
    seen = _oldmail(oldmail)
    _run(
        ctx,
        "ispconfig",
        lambda: parse_ispconfig(text, str(file)),
        owner=owner,
        deliver_to=deliver_to,
        dry_run=dry_run,
        json_out=json_out,
        state_for=seen,
        unused=seen.unused if seen else None,
    )


@app.command("json")
@file_argument
@dry_run_option
@json_option
@click.pass_context
def import_json(ctx: click.Context, file: Path, dry_run: bool, json_out: bool) -> None:
    """Import a `mailhaul export --json` file; its passphrase on stdin if it holds passwords."""
    from mailhaul.services.export import has_passwords, parse_export, state_reader

    try:
        data: Any = json.loads(read_text(file))
    except json.JSONDecodeError as exc:
        fail(f"{file}:{exc.lineno}: not JSON: {exc.msg}")
    passphrase = read_passphrase(confirm=False) if has_passwords(data) else None
    with errors_to_exit():
        parsed, states = parse_export(data, str(file), passphrase)
    _run(
        ctx,
        "json",
        lambda: parsed,
        dry_run=dry_run,
        json_out=json_out,
        state_for=state_reader(states),
    )
