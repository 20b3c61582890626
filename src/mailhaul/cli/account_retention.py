"""The options of `account add|edit` about how long mail stays on the server, how much a
run takes and what the first sync takes: ``--delete-after DAYS`` (with ``--keep``),
``--max-messages-per-run N``, ``--max-bytes-per-run SIZE`` (0 removes one: never delete,
no limit), ``--new-only`` and ``--since YYYY-MM-DD`` ('' removes it), ``--move-to FOLDER``,
and for push without NOTIFY ``--push-folder NAME`` (repeatable: the list given replaces the
one stored) and ``--no-push-folders`` (back to the INBOX alone)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace

import click

from mailhaul.cli.base import Size, option_group
from mailhaul.domain.options import RetrievalOptions
from mailhaul.domain.validation import FieldError


@dataclass(frozen=True)
class RetentionChange:
    """What the options said (None: not given; 0: remove)."""

    delete_after: int | None = None
    max_messages_per_run: int | None = None
    max_bytes_per_run: int | None = None
    new_only: bool | None = None
    since: str | None = None
    move_to: str | None = None
    push_folder: tuple[str, ...] = ()
    no_push_folders: bool = False

    def applied(self, options: RetrievalOptions) -> RetrievalOptions:
        """``options`` with what was given changed."""
        changed = options
        if self.delete_after is not None:
            changed = replace(changed, delete_after_days=self.delete_after or None)
        if self.max_messages_per_run is not None:
            changed = replace(changed, max_messages_per_run=self.max_messages_per_run or None)
        if self.max_bytes_per_run is not None:
            changed = replace(changed, max_bytes_per_run=self.max_bytes_per_run or None)
        if self.new_only is not None:
            changed = replace(changed, new_only=self.new_only)
        if self.since is not None:
            changed = replace(changed, since=_day(self.since))
        if self.move_to is not None:
            changed = replace(changed, move_to=self.move_to.strip())
        if self.no_push_folders and self.push_folder:
            raise FieldError("push_folders", "--push-folder and --no-push-folders contradict")
        if self.no_push_folders:
            changed = replace(changed, push_folders=())
        elif self.push_folder:
            changed = replace(changed, push_folders=tuple(n.strip() for n in self.push_folder))
        return changed


def _day(text: str) -> datetime.date | None:
    """``--since``'s day, or None for ''; a FieldError for anything else."""
    if not text.strip():
        return None
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise FieldError("since", f"{text!r} is not a day written YYYY-MM-DD") from None


_OPTIONS = (
    click.option(
        "--delete-after",
        type=click.IntRange(min=0),
        metavar="DAYS",
        help="With --keep: delete a message on the server DAYS days after it was delivered "
        "(0: never).",
    ),
    click.option(
        "--max-messages-per-run",
        type=click.IntRange(min=0),
        metavar="N",
        help="End a run after N messages; the rest comes in the next run, due at once "
        "(0: no limit).",
    ),
    click.option(
        "--max-bytes-per-run",
        type=Size(),
        metavar="SIZE",
        help="End a run once this much is fetched (e.g. 200M); the rest comes next run "
        "(0: no limit).",
    ),
    click.option(
        "--new-only/--no-new-only",
        default=None,
        help="First sync: leave what a folder holds when it is first listed on the server; "
        "fetch only what arrives after.",
    ),
    click.option(
        "--move-to",
        metavar="FOLDER",
        help="IMAP: after delivery move each message to this server folder (made if "
        "missing) instead of deleting it ('' to delete again).",
    ),
    click.option(
        "--push-folder",
        multiple=True,
        metavar="NAME",
        help="IMAP push on a server without NOTIFY: watch this polled folder with IDLE, one "
        "connection each within the connection cap (repeatable; default: the INBOX only). "
        "A server with NOTIFY watches every polled folder on one connection: not needed.",
    ),
    click.option(
        "--no-push-folders",
        is_flag=True,
        default=False,
        help="Forget the --push-folder list (push watches the INBOX only).",
    ),
    click.option(
        "--since",
        metavar="YYYY-MM-DD",
        help="First sync: leave messages dated before this day on the server ('' for all).",
    ),
)


retention_options = option_group("retention", _OPTIONS, RetentionChange)
"""The options, handed to the command as one ``retention: RetentionChange``."""
