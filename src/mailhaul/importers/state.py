"""Already-seen state of the tools mailhaul replaces, so their mail is not delivered again.

- fetchmail's ``.fetchids``: one ``remoteuser@queryhost UIDL`` per line, for POP3 messages
  fetchmail saw and left on the server (it splits at the first blank after the first ``@``,
  then takes the host after the last ``@`` of that part). fetchmail tracks IMAP mail by the
  \\Seen flag, not in this file.
- getmail's ``oldmail-<server>-<port>-<username>`` files (``/\\:;<>|`` replaced by ``-``):
  ``msgid NUL timestamp`` lines. On POP3 the msgid is the UIDL (getmail turned ``/`` into
  ``-``); on IMAP there is one file per folder (``-<folder>`` appended, those characters
  replaced by ``.``) and the msgid is ``uidvalidity/uid``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailhaul.importers.common import ImportProblem

_GETMAIL_STRIP = re.compile(r"[/\\:;<>|]+")


@dataclass
class FetchidsEntry:
    """The UIDLs fetchmail saw for one remote user on one host."""

    user: str
    host: str
    line: int
    uids: list[str] = field(default_factory=list)


@dataclass
class SeenUids:
    """UIDs of one folder already delivered by the old tool, per UIDVALIDITY (0 on POP3)."""

    by_uidvalidity: dict[int, list[str]] = field(default_factory=dict)
    latest_uidvalidity: int = 0

    @property
    def count(self) -> int:
        """How many UIDs in all."""
        return sum(len(uids) for uids in self.by_uidvalidity.values())


def parse_fetchids(text: str, file: str) -> tuple[list[FetchidsEntry], list[ImportProblem]]:
    """The entries of a ``.fetchids`` file, grouped by (user, host) in order of appearance."""
    entries: dict[tuple[str, str], FetchidsEntry] = {}
    problems: list[ImportProblem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip(" \t")
        if not line.strip():
            continue
        at = line.find("@")
        blank = line.find(" ", at) if at >= 0 else -1
        if at < 0 or blank < 0:
            problems.append(ImportProblem(file, number, "not a `user@host UIDL` line"))
            continue
        userhost = line[:blank].rstrip(" \t")
        uid = line[blank:].lstrip(" ").split()[0] if line[blank:].strip() else ""
        user, _, host = userhost.rpartition("@")
        if not uid or not user or not host:
            problems.append(ImportProblem(file, number, "not a `user@host UIDL` line"))
            continue
        key = (user.lower(), host.lower())
        entry = entries.setdefault(key, FetchidsEntry(user, host, number))
        entry.uids.append(uid)
    return list(entries.values()), problems


def oldmail_filename(server: str, port: int, username: str, folder: str | None = None) -> str:
    """The name getmail gives the oldmail file of an account (and IMAP folder)."""
    name = _GETMAIL_STRIP.sub("-", f"oldmail-{server}-{port}-{username}")
    if folder is not None:
        name += "-" + _GETMAIL_STRIP.sub(".", folder)
    return name


def parse_oldmail(text: str, file: str, imap: bool) -> tuple[SeenUids, list[ImportProblem]]:
    """The UIDs of a getmail oldmail file; malformed lines are problems (getmail skips them)."""
    seen = SeenUids()
    problems: list[ImportProblem] = []
    newest: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        msgid, sep, stamp = line.partition("\0")
        if not sep or not stamp.strip().lstrip("-").isdigit() or not msgid:
            problems.append(ImportProblem(file, number, "not a `msgid NUL timestamp` line"))
            continue
        uidvalidity, uid = 0, msgid
        if imap:
            parts = msgid.split("/")
            if len(parts) == 3:  # getmail before 4.22: uidvalidity/mailbox/uid
                parts = [parts[0], parts[2]]
            if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit():
                problems.append(ImportProblem(file, number, f"{msgid!r} is not uidvalidity/uid"))
                continue
            uidvalidity, uid = int(parts[0]), parts[1]
        seen.by_uidvalidity.setdefault(uidvalidity, []).append(uid)
        newest[uidvalidity] = max(newest.get(uidvalidity, 0), int(stamp))
    if newest:
        seen.latest_uidvalidity = max(newest, key=lambda v: (newest[v], v))
    return seen, problems
