"""Push (IMAP IDLE) under `mailhaul serve` against a real Dovecot of its own, which the tests
restart or watch being left: after Dovecot restarts under the watcher (stopped politely, or
killed like a crash) the watcher comes back by itself, and the mail that came while the server
was down is delivered at once by a push poll, the mail after it too, each message once; a
SIGTERM of serve while several accounts idle leaves every session with LOGOUT (Dovecot logs
"Logged out"), where a killed serve leaves them dropped ("Connection closed")."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mailhaul.adapters.db.push_watches import PushWatchStore
from mailhaul.domain.account import Account
from mailhaul.domain.options import Protocol, Security
from support.dovecot import DovecotServer, Mailbox
from support.dovecot_fixture import running_dovecot
from support.mailhaul_home import Home
from support.processes import ServeProcess
from support.waiting import wait_for

# The watcher and its Dovecot are under test here; the database only stores the account and
# its runs (other push tests run on both): SQLite, so this 40 s module runs once.
pytestmark = pytest.mark.databases("sqlite")

STOP_GRACE = 10  # serve's poll.stop_grace here: SIGTERM must end it well within this

# Dovecot 2.3 (as read in its log, 2.3.19): imap-login logs each sign-in with its session id;
# the imap process logs the session's end under the same id, "Disconnected: Logged out in=..."
# after LOGOUT, "Disconnected: Connection closed (IDLE running for ...) in=..." when the
# client dropped the connection.
LOGGED_OUT = "Disconnected: Logged out"
DROPPED = "Disconnected: Connection closed"
_LOGIN = re.compile(r"imap-login: (?:Info: )?Login: user=<([^>]+)>.*\bsession=<([^>]+)>")
_END = re.compile(r"imap\([^)]+\)<\d+><([^>]+)>: (?:Info: )?(Disconnected: [^(]*?)(?: \(| in=|$)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DovecotServer]:
    """A Dovecot of this test's own (the shared one must not be restarted)."""
    with running_dovecot(tmp_path / "dovecot") as dovecot:
        yield dovecot


@dataclass
class Setup:
    """A home whose IMAP accounts (over implicit TLS) are pushed, with no scheduled poll due."""

    home: Home
    accounts: list[Account]

    @classmethod
    def create(cls, path: Path, database_url: str, mailboxes: list[Mailbox]) -> Setup:
        toml = (
            f'[database]\nurl = "{database_url}"\n'
            f"[poll]\ninterval = 3600\nstop_grace = {STOP_GRACE}\n"
        )
        home = Home.create(path, toml=toml)
        accounts = []
        for mailbox in mailboxes:
            added = home.add(mailbox, Protocol.IMAP, Security.SSL)
            accounts.append(home.app.accounts.edit(added.id, replace(added.spec, interval=3600)))
        return cls(home, accounts)

    def states(self) -> list[str | None]:
        with self.home.app.db.read() as conn:
            rows = PushWatchStore().rows(conn, [account.id for account in self.accounts])
        return [None if rows.get(a.id) is None else rows[a.id].state for a in self.accounts]

    def triggers(self, account: Account) -> list[str]:
        """The triggers of the account's polls, newest first."""
        return [run.trigger for run in self.home.app.accounts.runs_of(account.id)]

    def polls_finished(self) -> bool:
        """Every account polled (the first, scheduled poll at least) and no poll running."""
        runs = [self.home.app.accounts.runs_of(account.id) for account in self.accounts]
        return all(found and all(run.finished_at for run in found) for found in runs)

    def subjects(self) -> list[str]:
        """The Subject of every delivered message (a duplicate shows twice), sorted."""
        return sorted(
            line.decode().removeprefix("Subject: ")
            for data in self.home.delivered_files()
            for line in data.splitlines()
            if line.startswith(b"Subject:")
        )

    def close(self) -> None:
        self.home.app.db.dispose()


def message(subject: str) -> bytes:
    return f"From: a@example.test\r\nSubject: {subject}\r\n\r\n{subject}\r\n".encode()


def append(mailbox: Mailbox, subject: str) -> None:
    """Another client puts a message into the INBOX (IMAP APPEND)."""
    with mailbox.imap() as imap:
        status, _ = imap.append("INBOX", "", None, message(subject))
        assert status == "OK"


def sessions(server: DovecotServer) -> dict[str, tuple[str, str | None]]:
    """Every IMAP session in Dovecot's log: its id -> (user, how it ended; None: open)."""
    found: dict[str, tuple[str, str | None]] = {}
    text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    for line in text.splitlines():
        if (login := _LOGIN.search(line)) is not None:
            found[login.group(2)] = (login.group(1), None)
        elif (end := _END.search(line)) is not None and end.group(1) in found:
            found[end.group(1)] = (found[end.group(1)][0], end.group(2))
    return found


def open_sessions(server: DovecotServer) -> dict[str, list[str]]:
    """The ids of each user's sessions that have not ended (by the log), sorted."""
    by_user: dict[str, list[str]] = {}
    for session, (user, end) in sorted(sessions(server).items()):
        if end is None:
            by_user.setdefault(user, []).append(session)
    return by_user


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "killed"])
def test_it_comes_back_after_a_dovecot_restart_and_delivers_what_came_meanwhile_once(
    tmp_path: Path, server: DovecotServer, database_url: str, crash: bool
) -> None:
    mailbox = server.new_mailbox()
    setup = Setup.create(tmp_path / "home", database_url, [mailbox])
    (account,) = setup.accounts
    with contextlib.closing(setup), ServeProcess(setup.home.app.settings.home) as serve:
        assert wait_for(lambda: setup.triggers(account) == ["schedule"]), serve.log
        assert wait_for(lambda: setup.states() == ["watching"]), serve.log
        assert "reconnecting" not in serve.log  # the control of the wait for it below

        server.stop(kill=crash)  # SIGTERM (over TLS no BYE comes) or SIGKILL, like a crash
        mailbox.deliver(message("while the server was down"))  # the Maildir, nobody serving
        server.start()  # the same ports, users and mail

        assert wait_for(lambda: "reconnecting" in serve.log, 20), serve.log
        assert wait_for(lambda: setup.subjects() == ["while the server was down"], 20), serve.log
        assert setup.triggers(account) == ["push", "schedule"]  # no scheduled poll took it
        assert wait_for(lambda: setup.states() == ["watching"], 20), serve.log

        append(mailbox, "after the restart")
        assert wait_for(lambda: len(setup.subjects()) >= 2, 10), serve.log
        assert wait_for(setup.polls_finished), serve.log
        assert wait_for(lambda: mailbox.list_messages() == [])  # deleted by the polls, as ever
        assert setup.triggers(account) == ["push", "push", "schedule"]
        assert setup.subjects() == ["after the restart", "while the server was down"]


@pytest.mark.parametrize(
    ("killed", "ending"), [(False, LOGGED_OUT), (True, DROPPED)], ids=["sigterm", "kill"]
)
def test_serve_stopped_during_idle_logs_out_of_every_session(
    tmp_path: Path, server: DovecotServer, database_url: str, killed: bool, ending: str
) -> None:
    """SIGTERM: serve exits 0 within its grace time and Dovecot logs "Logged out" for every
    watched session. The control: after a SIGKILL it logs "Connection closed" for them."""
    mailboxes = [server.new_mailbox() for _ in range(3)]
    setup = Setup.create(tmp_path / "home", database_url, mailboxes)
    users = sorted(mailbox.user for mailbox in mailboxes)
    serve = ServeProcess(setup.home.app.settings.home).start()
    try:
        assert wait_for(lambda: setup.states() == ["watching"] * 3), serve.log
        assert wait_for(setup.polls_finished), serve.log
        assert [setup.triggers(account) for account in setup.accounts] == [["schedule"]] * 3
        # the first polls' sessions have ended: one open session per user, the watcher's
        assert wait_for(lambda: [len(ids) for ids in open_sessions(server).values()] == [1] * 3)
        watched = open_sessions(server)
        assert sorted(watched) == users
        assert serve.proc is not None
        began = time.monotonic()
        if killed:
            serve.proc.kill()
        code = serve.stop(timeout=STOP_GRACE)
        took = time.monotonic() - began
    finally:
        serve.stop()
        setup.close()
    assert code == (-9 if killed else 0), serve.log
    assert took < STOP_GRACE
    ids = [session for found in watched.values() for session in found]
    assert wait_for(lambda: all(sessions(server)[s][1] is not None for s in ids), 10), (
        server.log_tail()
    )
    ended = sessions(server)
    assert {s: ended[s][1] for s in ids} == dict.fromkeys(ids, ending), server.log_tail()
