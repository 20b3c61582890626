"""A mailhaul home for integration tests, with accounts pointed at the test Dovecot."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from mailhaul.adapters.sinks.maildir import MaildirSink, maildir_folder_name
from mailhaul.adapters.sinks.routing import RoutingSink
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.filtering import FilterOptions
from mailhaul.domain.limits import DAY
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.services.polling import RunSummary
from mailhaul.services.status import AccountStatus
from mailhaul.settings import load_settings
from support.dovecot import Mailbox

OWNER = "owner@local.test"
# The database of homes made without an explicit one (None: the home's own SQLite file).
# tests/conftest.py sets it for the tests it runs on PostgreSQL.
DEFAULT_DATABASE_URL: str | None = None
RECEIVED_LINES = 5  # Received (3 lines), X-Original-To, X-Mailhaul-Account


def port_for(mailbox: Mailbox, protocol: Protocol, security: Security) -> int:
    """The test Dovecot's port for a protocol and security mode."""
    ports = mailbox.ports
    if protocol is Protocol.POP3:
        return ports.pop3s if security is Security.SSL else ports.pop3
    return ports.imaps if security is Security.SSL else ports.imap


@dataclass
class Home:
    """A mailhaul home in a temp dir."""

    app: App

    @classmethod
    def create(cls, path: Path, toml: str = "", database_url: str | None = None) -> Home:
        if toml:
            path.mkdir(parents=True, exist_ok=True)
            (path / "mailhaul.toml").write_text(toml)
        overrides: dict[str, object] = {"poll.timeout": 10}
        url = database_url or DEFAULT_DATABASE_URL
        if url:
            overrides["database.url"] = url
        settings = load_settings(path, overrides, environ={})
        init_home(settings)
        return cls(App(settings))

    def add(
        self,
        mailbox: Mailbox,
        protocol: Protocol,
        security: Security = Security.SSL,
        *,
        ca: bool = True,
        deliver_to: str = "",
        verify: bool = True,
        password: str | None = None,
        filters: FilterOptions | None = None,
        **options: object,
    ) -> Account:
        folders = tuple(cast("Iterable[str]", options.pop("folders", ("INBOX",))))
        spec = AccountSpec(
            owner=OWNER,
            protocol=protocol,
            host="localhost",
            port=port_for(mailbox, protocol, security),
            security=security,
            username=mailbox.user,
            verify_cert=verify,
            ca_file=str(mailbox.server.ca_path) if ca else None,
            options=RetrievalOptions(folders=folders, **options),  # type: ignore[arg-type]
            deliver_to=deliver_to,
            filters=filters or FilterOptions(),
        )
        return self.app.accounts.add(spec, password or mailbox.password)

    def poll(self, account: Account) -> RunSummary:
        return self.app.poller.poll(account.id)

    def move_clock(self, days: float) -> None:
        """The polls' clock (kept mail's days, the daily download budget), ``days`` ahead
        of the real one: tests move it rather than wait."""
        poller = self.app.poller
        poller.deps = replace(poller.deps, clock=lambda: time.time() + days * DAY)

    def status(self, account: Account) -> AccountStatus:
        """The account's state as every view shows it."""
        return self.app.status.accounts([account.id])[0]

    def log(self, account: Account) -> str:
        return self.app.accounts.runs_of(account.id, 1)[0].log

    def maildir_for(self, address: str = OWNER) -> Path:
        """The Maildir that mail for ``address`` is delivered to."""
        sink = self.app.sink
        if isinstance(sink, RoutingSink):
            sink = sink.route(address)
        assert isinstance(sink, MaildirSink), f"{address} is not delivered to a Maildir"
        return sink.maildir_for(address)

    def delivered_files(self, address: str = OWNER) -> list[bytes]:
        """Delivered messages as stored (mailhaul's headers included), sorted."""
        maildir = self.maildir_for(address)
        return sorted(
            path.read_bytes()
            for path in [*(maildir / "new").glob("*"), *(maildir / "cur").glob("*")]
        )

    def delivered(
        self, address: str = OWNER, folder: str | None = None, everywhere: bool = False
    ) -> list[bytes]:
        """Delivered messages, without mailhaul's Received header, sorted: in the mailbox
        itself, in its local ``folder`` (``Lists/python``), or ``everywhere`` (the mailbox
        and all its Maildir++ folders)."""
        maildir = self.maildir_for(address)
        if everywhere:
            places = [maildir, *(p for p in maildir.glob(".*") if (p / "new").is_dir())]
        elif folder:
            places = [maildir / maildir_folder_name(folder)]
        else:
            places = [maildir]
        result = []
        for place in places:
            for path in [*(place / "new").glob("*"), *(place / "cur").glob("*")]:
                data = path.read_bytes()
                assert data.startswith(b"Received: from localhost by mailhaul with ")
                result.append(data.split(b"\n", RECEIVED_LINES)[RECEIVED_LINES])
        return sorted(result)
