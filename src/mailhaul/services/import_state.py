"""Reading the old tools' already-seen state for the accounts being imported.

Each reader is called once per imported account (with its validated spec) and returns the
records to write; afterwards `unused()` names the state nobody claimed, so nothing in a
state file is silently ignored.
"""

from __future__ import annotations

from pathlib import Path

from mailhaul.domain.account import AccountSpec
from mailhaul.domain.messages import POP3_FOLDER
from mailhaul.domain.options import Protocol
from mailhaul.importers.common import ImportedAccount
from mailhaul.importers.state import oldmail_filename, parse_fetchids, parse_oldmail
from mailhaul.services.importing import AccountState


def _record(folder: str, uidvalidity: int, uid: str) -> dict[str, object]:
    return {
        "folder": folder,
        "uidvalidity": uidvalidity,
        "uid": uid,
        "state": "delivered",
        "fingerprint": "",
        "size": 0,
    }


class FetchidsState:
    """fetchmail's ``.fetchids``: POP3 UIDLs per ``remoteuser@queryhost``."""

    def __init__(self, text: str, file: str) -> None:
        entries, problems = parse_fetchids(text, file)
        self.file = file
        self.entries = {(e.user.lower(), e.host.lower()): e for e in entries}
        self.used: set[tuple[str, str]] = set()
        self.notes = [str(p) for p in problems]

    def __call__(self, imported: ImportedAccount, spec: AccountSpec) -> AccountState:
        key = (imported.username.lower(), imported.host.lower())
        entry = self.entries.get(key)
        if entry is None:
            return AccountState()
        self.used.add(key)
        where = f"{self.file}:{entry.line}"
        if spec.protocol is Protocol.IMAP:
            extra = (
                " With keep + fetchall, mail fetchmail left on the server is delivered once more."
                if spec.options.keep and spec.options.fetchall
                else ""
            )
            imported.notes.append(
                f"{where}: fetchmail tracks IMAP mail by the \\Seen flag, which mailhaul "
                f"honours without fetchall; the {len(entry.uids)} UID(s) there are not used."
                + extra
            )
            return AccountState()
        imported.notes.append(
            f"{where}: {len(entry.uids)} message(s) fetchmail already delivered will not be "
            "delivered again"
        )
        records = [_record(POP3_FOLDER, 0, uid) for uid in entry.uids]
        return AccountState(records=records)

    def unused(self) -> list[str]:
        """Notes on entries that matched no imported account."""
        return self.notes + [
            f"{self.file}:{e.line}: no imported account for {e.user}@{e.host}: "
            f"its {len(e.uids)} UID(s) were not imported"
            for key, e in self.entries.items()
            if key not in self.used
        ]


class OldmailState:
    """getmail's ``oldmail-*`` files in a directory (one per POP3 account or IMAP folder)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = {p.name: p for p in sorted(directory.glob("oldmail-*")) if p.is_file()}
        self.used: set[str] = set()
        self.notes: list[str] = []

    def __call__(self, imported: ImportedAccount, spec: AccountSpec) -> AccountState:
        imap = spec.protocol is Protocol.IMAP
        state = AccountState()
        folders: list[str | None] = list(spec.options.folders) if imap else [None]
        for folder in folders:
            name = oldmail_filename(imported.host, spec.port, imported.username, folder)
            path = self.files.get(name)
            if path is None:
                continue
            self.used.add(name)
            text = path.read_text(encoding="utf-8", errors="replace")
            seen, problems = parse_oldmail(text, str(path), imap)
            self.notes.extend(str(p) for p in problems)
            target = folder or POP3_FOLDER
            for uidvalidity, uids in seen.by_uidvalidity.items():
                state.records.extend(_record(target, uidvalidity, uid) for uid in uids)
            if imap and seen.count:
                state.folders[target] = seen.latest_uidvalidity
            imported.notes.append(
                f"{path}: {seen.count} message(s) getmail already delivered will not be "
                "delivered again"
            )
        return state

    def unused(self) -> list[str]:
        """Notes on oldmail files that matched no imported account."""
        return self.notes + [
            f"{path}: no imported account matches this oldmail file: not imported"
            for name, path in self.files.items()
            if name not in self.used
        ]
