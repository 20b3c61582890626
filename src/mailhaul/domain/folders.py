"""Which remote folders an account fetches and which local folder each lands in: pure.

A remote folder is what IMAP LIST says of it: its name, the server's hierarchy separator and
its attributes (``\\Noselect``, special-use ``\\Junk``, ``\\Sent``…, RFC 6154). The rules are
what the user set: a fixed list of folders, or every folder (``all_folders``) with include and
exclude patterns (LIST's ``*`` and ``%``); the local side is the user's mailbox (``None``) or a
folder in it, named with ``/`` between levels, which the sinks turn into their own form
(Maildir++ ``.Lists.python``, LMTP ``local+Lists.python@domain``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from mailhaul.domain.errors import ConfigError

INBOX = "INBOX"
# special-use folders --all-folders leaves out unless an --include names them
LEFT_OUT = frozenset({"\\trash", "\\junk", "\\drafts", "\\all"})
# where --special-use-map files these, whatever the server calls them
SPECIAL_USE_HOMES = {"\\junk": "Junk", "\\sent": "Sent", "\\archive": "Archive"}
SPECIAL_USE = frozenset(
    {"\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash", "\\important"}
)
_UNSELECTABLE = frozenset({"\\noselect", "\\nonexistent"})
MAX_LOCAL_NAME = 200
MAX_PATTERNS = 50


@dataclass(frozen=True)
class RemoteFolder:
    """One folder as the server lists it."""

    name: str
    separator: str | None = None
    attributes: frozenset[str] = frozenset()  # lower case, with the backslash

    @property
    def selectable(self) -> bool:
        """Whether it can hold messages (not ``\\Noselect``/``\\NonExistent``)."""
        return not self.attributes & _UNSELECTABLE

    @property
    def special_use(self) -> str | None:
        """Its special use (``\\junk``, ``\\sent``…), lower case, or None."""
        found = sorted(self.attributes & SPECIAL_USE)
        return found[0] if found else None

    @property
    def parts(self) -> tuple[str, ...]:
        """Its name split at the hierarchy separator, without a leading ``INBOX`` level
        (Courier and Cyrus keep every folder under ``INBOX.``)."""
        if self.name.upper() == INBOX:
            return ()
        parts = tuple(self.name.split(self.separator)) if self.separator else (self.name,)
        if len(parts) > 1 and parts[0].upper() == INBOX:
            parts = parts[1:]
        return tuple(part for part in parts if part)


@dataclass(frozen=True)
class FolderRules:
    """What the user set about folders (the CLI's ``--all-folders``, ``--include``,
    ``--exclude``, ``--map``, ``--into``, ``--special-use-map``)."""

    all_folders: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    mapping: tuple[tuple[str, str], ...] = ()  # (remote name or LIST pattern, local folder)
    into: str = ""
    special_use_map: bool = True

    @classmethod
    def flat(cls, folders: Iterable[str]) -> FolderRules:
        """Every one of ``folders`` into the mailbox itself, as fetchmail and getmail
        deliver (what an imported account keeps doing)."""
        return cls(mapping=tuple((name, "") for name in folders if name.upper() != INBOX))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready values (stored with the account, exported, shown by the API)."""
        return {
            "all_folders": self.all_folders,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "map": [[remote, local] for remote, local in self.mapping],
            "into": self.into,
            "special_use_map": self.special_use_map,
        }

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> FolderRules:
        """Rules from ``as_dict()``'s values (missing ones take their defaults)."""
        mapping = values.get("map") or []
        if not isinstance(mapping, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
            for pair in mapping
        ):
            raise ConfigError("folder map: expected [[remote, local], …]")
        return cls(
            all_folders=bool(values.get("all_folders", False)),
            include=_strings(values.get("include"), "include"),
            exclude=_strings(values.get("exclude"), "exclude"),
            mapping=tuple((str(remote), str(local)) for remote, local in mapping),
            into=str(values.get("into") or ""),
            special_use_map=bool(values.get("special_use_map", True)),
        )

    @property
    def asks_for_folders(self) -> bool:
        """Whether the user asked in so many words for mail outside the mailbox itself (a
        ``--map`` to a folder, ``--into``): a delivery that cannot file into folders refuses
        these rules."""
        return bool(self.into) or any(local for _, local in self.mapping)

    def local_for(self, folder: RemoteFolder, files_folders: bool = True) -> str | None:
        """The local folder ``folder``'s mail lands in (``a/b``), or None for the mailbox
        itself. ``--map`` and the special-use homes are where they say; ``--into`` holds
        everything else, INBOX included. Where the delivery cannot file into folders
        (``files_folders`` false: SMTP, an MDA, LMTP without ``+detail``) all mail lands in
        the mailbox itself."""
        if not files_folders:
            return None
        exact = dict(self.mapping)
        if folder.name in exact:
            return exact[folder.name] or None
        for remote, local in self.mapping:  # a pattern (``*``, ``%``) maps what it matches
            if matches(remote, folder):
                return local or None
        use = folder.special_use
        if self.special_use_map and use in SPECIAL_USE_HOMES:
            return SPECIAL_USE_HOMES[use]
        # a level holds no separator of the local side ("/" between levels, Maildir++ ".")
        parts = [part.replace("/", "_").replace(".", "_") for part in folder.parts]
        if self.into:
            parts = [self.into, *parts]
        return "/".join(parts) or None


def _strings(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"folder {what}: expected a list of patterns")
    return tuple(value)


def checked_rules(rules: FolderRules) -> FolderRules:
    """The rules with local names tidied, or a ConfigError worded ``field: message``
    (``include``, ``exclude``, ``map``, ``into``) naming what is wrong."""
    for what, patterns in (("include", rules.include), ("exclude", rules.exclude)):
        for pattern in patterns:
            if not pattern or len(pattern) > MAX_LOCAL_NAME or any(ord(c) < 0x20 for c in pattern):
                raise ConfigError(f"{what}: {pattern!r} is not a folder name or pattern")
        if len(patterns) > MAX_PATTERNS:
            raise ConfigError(f"{what}: at most {MAX_PATTERNS} patterns")
    mapping = []
    for remote, local in rules.mapping:
        if not remote or len(remote) > MAX_LOCAL_NAME:
            raise ConfigError(f"map: {remote}={local}: name the remote folder before '='")
        try:
            mapping.append((remote, local_name(local) if local else ""))
        except ConfigError as exc:
            raise ConfigError(f"map: {remote}={local}: {exc}") from None
    if len({remote for remote, _ in mapping}) != len(mapping):
        raise ConfigError("map: the same remote folder is mapped twice")
    try:
        into = local_name(rules.into) if rules.into else ""
    except ConfigError as exc:
        raise ConfigError(f"into: {exc}") from None
    return FolderRules(
        rules.all_folders, rules.include, rules.exclude, tuple(mapping), into, rules.special_use_map
    )


def local_name(name: str) -> str:
    """A local folder name in its stored form (levels joined by ``/``; ``.`` between levels
    is read as ``/`` as well), or a ConfigError."""
    levels = [level.strip() for level in re.split(r"[/.]", name.strip())]
    if not name.strip() or any(not level for level in levels):
        raise ConfigError(f"{name!r} is not a local folder name (levels separated by '/')")
    if len(name) > MAX_LOCAL_NAME or any(ord(ch) < 0x20 or ch in "\\*%" for ch in name):
        raise ConfigError(f"{name!r} is not a local folder name")
    if levels[0].upper() == INBOX and len(levels) == 1:
        raise ConfigError("INBOX is the mailbox itself: leave the local name empty for it")
    return "/".join(levels)


def parse_mapping(text: str) -> tuple[str, str]:
    """``REMOTE=LOCAL`` (the last ``=`` splits: remote names may hold one)."""
    remote, sep, local = text.rpartition("=")
    if not sep or not remote:
        raise ConfigError(f"--map {text!r}: write REMOTE=LOCAL, e.g. '[Gmail]/Spam=Junk'")
    return remote, local


@cache
def _pattern(pattern: str, separator: str | None) -> re.Pattern[str]:
    """LIST's wildcards: ``*`` matches anything, ``%`` anything but the separator."""
    out = []
    for char in pattern:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append(f"[^{re.escape(separator)}]*" if separator else ".*")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


def matches(pattern: str, folder: RemoteFolder) -> bool:
    """Whether ``pattern`` names ``folder`` (INBOX in any case)."""
    if pattern.upper() == INBOX:
        return folder.name.upper() == INBOX
    return _pattern(pattern, folder.separator).fullmatch(folder.name) is not None


def chosen(remote: Sequence[RemoteFolder], rules: FolderRules) -> list[RemoteFolder]:
    """The folders ``--all-folders`` fetches: every selectable one but the special-use
    Trash, Junk, Drafts and All (unless an include pattern names them) and those an exclude
    pattern names; INBOX first, then in the server's order, ``\\All`` last (a message
    lands in its own folder before the one that holds everything)."""
    picked = []
    for folder in remote:
        if not folder.selectable:
            continue
        included = any(matches(p, folder) for p in rules.include)
        if folder.special_use in LEFT_OUT and not included:
            continue
        if any(matches(p, folder) for p in rules.exclude) and not included:
            continue
        picked.append(folder)
    picked.sort(key=lambda f: (f.name.upper() != INBOX, f.special_use == "\\all"))
    return picked


def named(names: Iterable[str], remote: Sequence[RemoteFolder]) -> list[RemoteFolder]:
    """The named folders (a fixed list), with what the server says of them where it listed
    them (a name it did not list is kept: selecting it will say it does not exist)."""
    by_name = {folder.name: folder for folder in remote}
    by_name.update({INBOX: by_name.get(INBOX, RemoteFolder(INBOX))})
    return [by_name.get(name) or RemoteFolder(name) for name in names]
