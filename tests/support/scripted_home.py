"""A mailhaul home (SQLite, Maildir) polling the scripted POP3/IMAP servers for real."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailhaul.adapters.db.records import RefusedRecord
from mailhaul.adapters.sinks.maildir import MaildirSink, maildir_folder_name
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.services.polling import RunSummary
from mailhaul.settings import load_settings

OWNER = "owner@example.org"


@dataclass
class ScriptedHome:
    """A home whose accounts point at scripted servers on loopback (security none)."""

    app: App

    def account(
        self, protocol: Protocol, port: int, username: str, password: str, **options: object
    ) -> int:
        spec = AccountSpec(
            owner=OWNER,
            protocol=protocol,
            host="127.0.0.1",
            port=port,
            security=Security.NONE,
            username=username,
            options=RetrievalOptions(**options),  # type: ignore[arg-type]
        )
        return self.app.accounts.add(spec, password).id

    def poll(self, account_id: int) -> RunSummary:
        return self.app.poller.poll(account_id)

    def log(self, account_id: int) -> str:
        return self.app.accounts.runs_of(account_id, 1)[0].log

    def refused(self, account_id: int) -> list[RefusedRecord]:
        return self.app.accounts.refused_of(account_id)

    def delivered(self, folder: str | None = None) -> list[bytes]:
        """Delivered messages, mailhaul's Received header taken off, CRLF as sent: in the
        mailbox itself, or in its local ``folder``."""
        sink = self.app.sink
        assert isinstance(sink, MaildirSink)
        maildir = sink.maildir_for(OWNER)
        if folder:
            maildir = maildir / maildir_folder_name(folder)
        found = []
        for path in sorted([*(maildir / "new").glob("*"), *(maildir / "cur").glob("*")]):
            data = path.read_bytes()
            assert data.startswith(b"Received: from 127.0.0.1 by mailhaul")
            found.append(data.split(b"\n", 5)[5].replace(b"\n", b"\r\n"))
        return sorted(found)


def make_scripted_home(tmp_path: Path) -> ScriptedHome:
    settings = load_settings(tmp_path / "home", {"poll.timeout": "5"}, environ={})
    init_home(settings)
    return ScriptedHome(App(settings))
