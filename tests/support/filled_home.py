"""A home with something in every list the CLI prints (accounts, runs, refused messages,
incidents and their notices, the quarantine, workers, users, API keys, OAuth2 providers,
stored settings), its values long enough that an 80-column table would have to cut them.

The rows are written through the stores, as a service's runs would have left them; the
CLI then reads them as a user types it (``FilledHome.cli``).
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import insert

from mailhaul.adapters.db.incidents import IncidentStore
from mailhaul.adapters.db.quarantine import QuarantinedMessage, QuarantineRows
from mailhaul.adapters.db.tables import messages, workers
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.access import Principal, Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.incidents import IncidentKind, NoticeEvent
from mailhaul.domain.options import Protocol, Security
from mailhaul.settings import load_settings
from support.cli import Cli

OWNER = "alexandra.konstantinopolskaya@a-rather-long-hosting-customer-domain.example.org"
DOMAIN = "a-rather-long-hosting-customer-domain.example.org"
HOST = "imap.mail-provider-with-a-very-long-host-name.example.net"
ERROR = "the server closed the connection while the message was read: " + "x" * 40
REFUSAL = "552 5.2.2 mailbox full: the local backend refused it for good " + "y" * 30
REASON = "login failed: authentication failed for this account " + "z" * 40
VIRUS = "Win.Test.EICAR_HDB-1-a-signature-with-a-long-name-for-the-test"
SUBJECT = "Your invoice for the quarter, with the attachment you asked for " + "w" * 30
PROVIDER = "corporate-identity-provider-of-a-rather-long-hosting-customer"
CLIENT_ID = "0123456789abcdef-client-id-with-a-long-tail-" + "c" * 30
WORKER = "a-scheduler-host-with-a-long-name.example.net:12345:abcdef"


class FilledHome:
    """A home on ``database_url`` with one of everything; ``now`` is when it was made."""

    def __init__(self, path: Path, database_url: str) -> None:
        settings = load_settings(path, {"database.url": database_url}, environ={})
        init_home(settings)
        self.app = App(settings)
        self.now = time.time()
        self.cli = Cli(path, MAILHAUL_DATABASE_URL=database_url, COLUMNS="80")
        self.account_id = self._account()
        self._run()
        self._trouble()
        self._people()

    def close(self) -> None:
        """Let go of the database."""
        self.app.db.dispose()

    def _account(self) -> int:
        spec = AccountSpec(
            owner=OWNER,
            protocol=Protocol.IMAP,
            host=HOST,
            port=993,
            security=Security.SSL,
            username="konstantinopolskaya",
        )
        return self.app.accounts.add(spec, "Pa55-never-shown").id

    def _run(self) -> None:
        """A failed run, as the account's last, and the refused message it left."""
        app, now, account_id = self.app, self.now, self.account_id
        with app.db.begin() as conn:
            run_id = app.run_store.start(conn, account_id, "schedule", now - 120)
            app.run_store.finish(
                conn,
                run_id,
                result="error",
                finished_at=now - 110,
                fetched=3,
                size=3 * 1024 * 1024,
                deleted=0,
                skipped=1,
                error=ERROR,
                log=f"connecting to {HOST}\n{ERROR}\n",
            )
            assert app.account_store.claim(conn, account_id, "test:1:a", now - 120, 300)
            app.account_store.finish(
                conn,
                account_id,
                "test:1:a",
                state="error",
                result="error",
                error=ERROR,
                finished_at=now - 110,
                next_poll_at=now + 190,
                consecutive_failures=1,
            )
            conn.execute(
                insert(messages).values(
                    account_id=account_id, folder="INBOX", uidvalidity=7, uid="42",
                    state="refused", destination=OWNER, size=2048, recorded_at=now - 115,
                    note=REFUSAL,
                )
            )  # fmt: skip
            conn.execute(
                insert(workers).values(
                    id=WORKER, hostname="a-scheduler-host-with-a-long-name.example.net",
                    pid=12345, started_at=now - 3600, heartbeat_at=now - 5, running=0,
                )
            )  # fmt: skip

    def _trouble(self) -> None:
        """An incident with a sent notice, and a quarantined message."""
        store, now = IncidentStore(), self.now
        with self.app.db.begin() as conn:
            incident = store.open(conn, self.account_id, IncidentKind.FAILING, now - 110, REASON)
            store.queue(conn, incident.id, NoticeEvent.FAILING, [OWNER], now - 100)
            (notice,) = store.due_notices(conn, now, limit=10)
            store.sent(conn, notice.id, now - 90)
            QuarantineRows().add(
                conn,
                QuarantinedMessage(
                    id=0, account_id=self.account_id, name="1.M1.quarantined", folder="INBOX",
                    uid="43", signature=VIRUS, scanner="clamd", size=68 * 1024,
                    sender=OWNER, subject=SUBJECT, created_at=now - 112,
                ),
            )  # fmt: skip

    def _people(self) -> None:
        """A domain admin with an API key, an OAuth2 provider, stored settings."""
        system = Principal.system()
        users = self.app.users
        boss = users.add(system, OWNER, Role.DOMAIN_ADMIN, "a-long-enough-password", [DOMAIN])
        users.create_key(system, boss.id, "the nightly export cron job of the hosting panel")
        self.cli.ok(
            "oauth", "provider", "add", PROVIDER, "--client-id", CLIENT_ID,
            "--token-url", "https://login.a-rather-long-hosting-customer-domain.example.org/token",
            "--device-url", "https://login.a-rather-long-hosting-customer-domain.example.org/device",
            "--scope", "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
        )  # fmt: skip
        self.cli.ok("settings", "set", "poll.interval", "900")
        self.cli.ok(
            "settings", "set", f"delivery.domains.{DOMAIN}",
            '{"method": "lmtp", "lmtp": "127.0.0.1:24"}',
        )  # fmt: skip
