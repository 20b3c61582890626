"""The account form's folder fields (every folder, include, exclude, map, into, special use),
how long mail stays and how much a run takes (delete after, per-run limits), and the options
they describe (pure: no request, no I/O).

Patterns and maps are written one a line; a map line is ``REMOTE=LOCAL`` (``Sent=`` puts a
folder's mail into the mailbox itself).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from starlette.datastructures import FormData

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.folders import FolderRules, parse_mapping
from mailhaul.domain.options import RetrievalOptions
from mailhaul.domain.validation import FieldChecks, FieldError, parse_size
from mailhaul.web.ui.templating import checked, text

FIELDS = (
    "all_folders",
    "include",
    "exclude",
    "map",
    "into",
    "special_use_map",
    "delete_after",
    "max_messages_per_run",
    "max_bytes_per_run",
    "new_only",
    "since",
    "move_to",
    "push_folders",
)
LABELS = {
    "all_folders": "Every folder",
    "include": "Also these folders",
    "exclude": "Leave out",
    "map": "Folder map",
    "into": "Into the local folder",
    "special_use_map": "Junk, Sent, Archive by their use",
    "delete_after": "Delete after (days)",
    "max_messages_per_run": "Messages per run",
    "max_bytes_per_run": "Size per run",
    "new_only": "Only new mail",
    "since": "Only mail since",
    "move_to": "Move to",
    "push_folders": "Push folders",
}
MAX_LINES = 100


@dataclass(frozen=True)
class FolderFormValues:
    """The folder fields as typed."""

    all_folders: bool = False
    include: str = ""
    exclude: str = ""
    map: str = ""
    into: str = ""
    special_use_map: bool = True
    delete_after: str = ""
    max_messages_per_run: str = ""
    max_bytes_per_run: str = ""
    new_only: bool = False
    since: str = ""
    move_to: str = ""
    push_folders: str = ""


@dataclass(frozen=True)
class Extras:
    """The retrieval options of these fields besides the folder rules."""

    delete_after_days: int | None = None
    max_messages_per_run: int | None = None
    max_bytes_per_run: int | None = None
    new_only: bool = False
    since: datetime.date | None = None
    move_to: str = ""
    push_folders: tuple[str, ...] = ()


def folder_values_of_options(options: RetrievalOptions) -> FolderFormValues:
    """The fields filled from stored options."""
    rules = options.rules
    return FolderFormValues(
        delete_after=_shown(options.delete_after_days),
        max_messages_per_run=_shown(options.max_messages_per_run),
        max_bytes_per_run=_shown(options.max_bytes_per_run),
        new_only=options.new_only,
        since=options.since.isoformat() if options.since else "",
        move_to=options.move_to,
        push_folders="\n".join(options.push_folders),
        all_folders=rules.all_folders,
        include="\n".join(rules.include),
        exclude="\n".join(rules.exclude),
        map="\n".join(f"{remote}={local}" for remote, local in rules.mapping),
        into=rules.into,
        special_use_map=rules.special_use_map,
    )


def folder_values_of_form(form: FormData) -> FolderFormValues:
    """The fields as submitted."""
    return FolderFormValues(
        all_folders=checked(form, "all_folders"),
        include=text(form, "include"),
        exclude=text(form, "exclude"),
        map=text(form, "map"),
        into=text(form, "into"),
        special_use_map=checked(form, "special_use_map"),
        delete_after=text(form, "delete_after"),
        max_messages_per_run=text(form, "max_messages_per_run"),
        max_bytes_per_run=text(form, "max_bytes_per_run"),
        new_only=checked(form, "new_only"),
        since=text(form, "since"),
        move_to=text(form, "move_to"),
        push_folders=text(form, "push_folders"),
    )


def _shown(value: int | None) -> str:
    return "" if value is None else str(value)


def extras_of(values: FolderFormValues, checks: FieldChecks) -> Extras:
    """Retention, per-run limits and the first sync as typed (empty: none); what cannot be
    read is noted in ``checks``."""
    found: dict[str, int | None] = {}
    for field, key, raw in (
        ("delete_after", "delete_after_days", values.delete_after),
        ("max_messages_per_run", "max_messages_per_run", values.max_messages_per_run),
    ):
        raw = raw.strip()
        found[key] = int(raw) if raw.isdigit() and len(raw) < 10 else None
        if raw and found[key] is None:
            checks.add(field, "must be a whole number")
    found["max_bytes_per_run"] = None
    if values.max_bytes_per_run.strip():
        try:
            found["max_bytes_per_run"] = parse_size(values.max_bytes_per_run)
        except FieldError as exc:
            checks.add("max_bytes_per_run", exc.message)
    since = None
    if values.since.strip():
        try:
            since = datetime.date.fromisoformat(values.since.strip())
        except ValueError:
            checks.add("since", "must be a day written YYYY-MM-DD")
    return Extras(
        found["delete_after_days"],
        found["max_messages_per_run"],
        found["max_bytes_per_run"],
        values.new_only,
        since,
        values.move_to.strip(),
        push_folders_of(values.push_folders, checks),
    )


def push_folders_of(value: str, checks: FieldChecks) -> tuple[str, ...]:
    """The push folders as typed: one a line, or separated by commas."""
    names = [name.strip() for line in value.splitlines() for name in line.split(",")]
    return _lines("push_folders", "\n".join(name for name in names if name), checks)


def _lines(field: str, value: str, checks: FieldChecks) -> tuple[str, ...]:
    lines = tuple(line.strip() for line in value.splitlines() if line.strip())
    if len(lines) > MAX_LINES:
        checks.add(field, f"at most {MAX_LINES} lines")
        return lines[:MAX_LINES]
    return lines


def rules_of(values: FolderFormValues, checks: FieldChecks) -> FolderRules:
    """The rules the fields describe; what cannot be read is noted in ``checks`` (the
    services check the rest)."""
    mapping: list[tuple[str, str]] = []
    for line in _lines("map", values.map, checks):
        try:
            mapping.append(parse_mapping(line))
        except ConfigError as exc:
            checks.add("map", str(exc).replace("--map ", "", 1))
            break
    return FolderRules(
        all_folders=values.all_folders,
        include=_lines("include", values.include, checks),
        exclude=_lines("exclude", values.exclude, checks),
        mapping=tuple(mapping),
        into=values.into.strip(),
        special_use_map=values.special_use_map,
    )
