"""Push (IMAP IDLE) under `mailhaul serve` against the real Dovecot: mail another client
appends is delivered within seconds while no scheduled poll is due (interval: an hour), over
implicit TLS with the certificate verified; after Dovecot ends the session under the
watcher, the watcher comes back and mail is still delivered once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx2 as httpx

from mailhaul.adapters.db.push_watches import PushWatchStore
from mailhaul.adapters.db.runs import RunRecord
from mailhaul.domain.options import Protocol, Security
from support.dovecot import Mailbox
from support.mailhaul_home import Home
from support.processes import ServeProcess
from support.waiting import wait_for


def append(mailbox: Mailbox, subject: str) -> None:
    """Another client puts a message into the INBOX (IMAP APPEND)."""
    raw = f"From: a@example.test\r\nSubject: {subject}\r\n\r\n{subject}\r\n".encode()
    with mailbox.imap() as imap:
        status, _ = imap.append("INBOX", "", None, raw)
        assert status == "OK"


def test_appended_mail_is_pushed_without_a_scheduled_poll(
    tmp_path: Path, mailbox: Mailbox, database_url: str
):
    toml = f'[database]\nurl = "{database_url}"\n[poll]\ninterval = 3600\n'
    home = Home.create(tmp_path / "home", toml=toml)
    added = home.add(mailbox, Protocol.IMAP, Security.SSL)
    account = home.app.accounts.edit(added.id, replace(added.spec, interval=3600))
    store = PushWatchStore()

    def state() -> str | None:
        with home.app.db.read() as conn:
            row = store.rows(conn, [account.id]).get(account.id)
        return None if row is None else row.state

    def runs() -> list[RunRecord]:
        return home.app.accounts.runs_of(account.id)

    def triggers() -> list[str]:
        return [run.trigger for run in runs()]

    def subjects() -> list[str]:
        return sorted(
            line.decode()
            for data in home.delivered_files()
            for line in data.splitlines()
            if line.startswith(b"Subject:")
        )

    with ServeProcess(home.app.settings.home) as serve:
        assert wait_for(lambda: triggers() == ["schedule"]), serve.log  # the first poll
        assert wait_for(lambda: state() == "watching"), serve.log
        append(mailbox, "two-factor code 123456")
        assert wait_for(lambda: subjects() == ["Subject: two-factor code 123456"], 10), serve.log
        assert triggers() == ["push", "schedule"]
        assert wait_for(lambda: mailbox.list_messages() == [])  # deleted by the poll, as ever
        assert wait_for(lambda: all(run.finished_at for run in runs()))

        def metrics() -> str:
            with httpx.Client(trust_env=False, timeout=10) as http:
                return http.get(f"{serve.url}/metrics").text

        assert wait_for(lambda: "mailhaul_push_latency_seconds_count 1.0" in metrics())
        assert "mailhaul_push_watched_connections 1.0" in metrics()
        assert "mailhaul_push_requests_total 1.0" in metrics()

        mailbox.kick()  # Dovecot ends the watcher's session (BYE, then it closes)
        assert wait_for(lambda: "reconnecting" in serve.log, 20), serve.log
        assert wait_for(lambda: state() == "watching", 20), serve.log
        append(mailbox, "after the kick")
        assert wait_for(lambda: len(subjects()) == 2, 10), serve.log
        assert subjects() == ["Subject: after the kick", "Subject: two-factor code 123456"]
    assert state() is None  # released at the stop
    home.app.db.dispose()
