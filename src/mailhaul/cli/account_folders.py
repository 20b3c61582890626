"""Folders in the CLI: the options of `account add|edit` that choose folders and where
each lands (``--all-folders``, ``--include``, ``--exclude``, ``--map``, ``--into``,
``--special-use-map``), and `mailhaul account folders ID`, the server's folders with their
special use and what becomes of each."""

from __future__ import annotations

from dataclasses import dataclass, replace

import click

from mailhaul.cli.base import json_option, option_group
from mailhaul.cli.context import errors_to_exit, state
from mailhaul.cli.output import print_json, print_table
from mailhaul.domain.folders import FolderRules, chosen, named, parse_mapping

CLEAR = ""  # `--include ''` (or --exclude, --map): empty the list


@dataclass(frozen=True)
class RulesChange:
    """What the folder options of one command said (None / empty: not given)."""

    all_folders: bool | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    mapping: tuple[str, ...] = ()
    into: str | None = None
    special_use_map: bool | None = None

    def applied(self, rules: FolderRules) -> FolderRules:
        """``rules`` with what was given changed (a list given replaces the old one)."""
        changed = rules
        if self.all_folders is not None:
            changed = replace(changed, all_folders=self.all_folders)
        if self.include:
            changed = replace(changed, include=_listed(self.include))
        if self.exclude:
            changed = replace(changed, exclude=_listed(self.exclude))
        if self.mapping:
            pairs = tuple(parse_mapping(text) for text in _listed(self.mapping))
            changed = replace(changed, mapping=pairs)
        if self.into is not None:
            changed = replace(changed, into=self.into)
        if self.special_use_map is not None:
            changed = replace(changed, special_use_map=self.special_use_map)
        return changed


def _listed(values: tuple[str, ...]) -> tuple[str, ...]:
    return () if values == (CLEAR,) else values


_OPTIONS = (
    click.option(
        "--all-folders/--no-all-folders",
        default=None,
        help="IMAP: poll every folder (not Trash, Junk, Drafts or All Mail unless --include "
        "names them); new folders are picked up.",
    ),
    click.option(
        "--include",
        multiple=True,
        help="With --all-folders: also poll folders matching this LIST pattern (* and %; "
        "repeatable; '' empties the list).",
    ),
    click.option(
        "--exclude",
        multiple=True,
        help="With --all-folders: leave out folders matching this pattern (repeatable).",
    ),
    click.option(
        "--map",
        "mapping",
        multiple=True,
        metavar="REMOTE=LOCAL",
        help="Deliver REMOTE's mail into the local folder LOCAL ('Sent=' into the mailbox "
        "itself; repeatable). Other folders land in the local folder of their own name.",
    ),
    click.option(
        "--into",
        metavar="FOLDER",
        help="Put the mail of INBOX and of every folder not mapped under this local folder "
        "('' for none).",
    ),
    click.option(
        "--special-use-map/--no-special-use-map",
        default=None,
        help="File the server's Junk, Sent and Archive folders (special use) into Junk, "
        "Sent and Archive, whatever their names (default on).",
    ),
)


folder_rule_options = option_group("folder_rules", _OPTIONS, RulesChange)
"""The folder options, handed to the command as one ``folder_rules: RulesChange``."""


@click.command("folders")
@click.argument("account_id", type=int, help="The account's id.")
@json_option
@click.pass_context
def folders(ctx: click.Context, account_id: int, json_out: bool) -> None:
    """The server's folders: special use, whether polled, and where each one's mail lands
    (connects with the stored password; fetches nothing)."""
    from mailhaul.domain.access import Principal

    with errors_to_exit():
        app = state(ctx).app()
        account = app.accounts.get(account_id)
        report = app.account_access.check_stored(Principal.system(), account_id)
        if not report.ok:
            raise click.ClickException(report.message)
        spec = account.spec
        rules = spec.options.rules
        files = app.sink.files_folders(spec.destination)
        if rules.all_folders:
            taken = {f.name for f in chosen(report.mailboxes, rules)}
        else:
            taken = {f.name for f in named(spec.options.folders, report.mailboxes)}
    rows = []
    for folder in report.mailboxes:
        local = rules.local_for(folder, files) if folder.name in taken else None
        rows.append(
            {
                "folder": folder.name,
                "special_use": folder.special_use,
                "selectable": folder.selectable,
                "polled": folder.name in taken,
                "lands_in": (local or "(mailbox)") if folder.name in taken else None,
            }
        )
    if json_out:
        print_json(rows)
        return
    from mailhaul.cli.output import table

    print_table(
        table(
            ("folder", "special use", "polled", "lands in"),
            (
                (
                    str(row["folder"]),
                    str(row["special_use"] or ""),
                    "yes" if row["polled"] else "no",
                    str(row["lands_in"] or ""),
                )
                for row in rows
            ),
        )
    )
