"""A mailhaul home (real database, SQLite or PostgreSQL, and Maildir) wired to an in-memory
FakeServer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mailhaul.adapters.sinks.maildir import MaildirSink
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.services.polling import Poller
from mailhaul.settings import load_settings
from support.fake_source import FakeServer


@dataclasses.dataclass
class Harness:
    """A mailhaul home wired to a FakeServer."""

    app: App
    server: FakeServer
    poller: Poller

    def add(self, **options: object) -> Account:
        protocol = Protocol.POP3 if self.server.pop3 else Protocol.IMAP
        folders = options.pop("folders", ("INBOX",))
        spec = AccountSpec(
            owner="owner@example.org",
            protocol=protocol,
            host="mail.example.net",
            port=995,
            security=Security.SSL,
            username="user",
            options=RetrievalOptions(folders=folders, **options),  # type: ignore[arg-type]
        )
        return self.app.accounts.add(spec, "s3cret-pw")

    def maildir_files(self, address: str = "owner@example.org") -> list[bytes]:
        sink = self.app.sink
        assert isinstance(sink, MaildirSink)
        maildir = sink.maildir_for(address)
        files = [*(maildir / "new").glob("*"), *(maildir / "cur").glob("*")]
        return sorted(path.read_bytes() for path in files)

    def bodies(self) -> list[bytes]:
        """Delivered messages without mailhaul's Received header."""
        result = []
        for data in self.maildir_files():
            assert data.startswith(b"Received: from mail.example.net by mailhaul")
            result.append(data.split(b"\n", 5)[5])
        return sorted(result)


def make_harness(tmp_path: Path, pop3: bool, database_url: str | None = None) -> Harness:
    """A harness in ``tmp_path/home``; ``database_url`` None: the home's own SQLite file."""
    overrides = {"database.url": database_url} if database_url else None
    settings = load_settings(tmp_path / "home", overrides, environ={})
    init_home(settings)
    server = FakeServer(pop3=pop3)
    app = App(settings, open_source=server.source)
    return Harness(app, server, app.poller)
