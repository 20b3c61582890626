"""Push (IMAP IDLE) under `mailhaul serve` against scripted IMAP servers, for what no real
server does on request: no IDLE at all, BYE in the middle of an IDLE, a connection that goes
silent, a flood of changes, and what a SIGTERM says to an idling server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.domain.account import Account, AccountSpec, Trigger
from mailhaul.domain.options import Protocol, Security
from support.databases import upgraded_sqlite
from support.mailhaul_home import Home
from support.processes import ServeProcess
from support.scripted_imap import ImapScript, Mailbox, Message, ScriptedImapServer
from support.waiting import wait_for

FIRST = Message(1, b"Subject: already there\r\n\r\nold\r\n")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLite only: what these tests show does not depend on the database (the watch
    lease on PostgreSQL has test_push_workers_postgres.py, push against Dovecot runs on
    both), and each waits seconds for the watcher."""
    return upgraded_sqlite(tmp_path)


def new_message(uid: int) -> Message:
    return Message(uid, f"Subject: pushed {uid}\r\n\r\nbody {uid}\r\n".encode())


class Scene:
    """A home with one push account on a scripted server, and `serve` running on it."""

    def __init__(
        self, home: Home, server: ScriptedImapServer, account: Account, serve: ServeProcess
    ) -> None:
        self.home, self.server, self.account, self.serve = home, server, account, serve

    def watch(self) -> WatchRow | None:
        with self.home.app.db.read() as conn:
            return PushWatchStore().rows(conn, [self.account.id]).get(self.account.id)

    def state(self) -> str | None:
        row = self.watch()
        return None if row is None else row.state

    def events(self) -> int:
        row = self.watch()
        return 0 if row is None else row.events

    def triggers(self) -> list[str]:
        return [run.trigger for run in self.home.app.accounts.runs_of(self.account.id)]

    def delivered(self) -> list[bytes]:
        return sorted(p.read_bytes() for p in self.home.app.settings.home.glob("mail/*/*/new/*"))

    def wait_first_poll(self) -> None:
        assert wait_for(lambda: self.triggers() == ["schedule"]), self.triggers()
        assert wait_for(lambda: len(self.delivered()) == 1)


@contextmanager
def scene(tmp_path: Path, database_url: str, script: ImapScript, **push: int) -> Iterator[Scene]:
    settings = "".join(f"{key} = {value}\n" for key, value in push.items())
    toml = (
        f'[database]\nurl = "{database_url}"\n'
        f"[poll]\ninterval = 3600\ntimeout = 2\n[push]\n{settings}"
    )
    home = Home.create(tmp_path / "home", toml=toml)
    with ScriptedImapServer(script) as server:
        spec = AccountSpec(
            owner="owner@local.test",
            protocol=Protocol.IMAP,
            host="127.0.0.1",
            port=server.port,
            security=Security.NONE,
            username="user",
            interval=3600,
        )
        account = home.app.accounts.add(spec, "secret")
        with ServeProcess(home.app.settings.home) as serve:
            yield Scene(home, server, account, serve)
        assert server.errors == []
    home.app.db.dispose()


def inbox(*messages: Message) -> dict[str, Mailbox]:
    return {"INBOX": Mailbox(7, list(messages))}


def test_new_mail_is_pushed_and_polled_once_with_trigger_push(tmp_path: Path, sqlite_url: str):
    with scene(tmp_path, sqlite_url, ImapScript(folders=inbox(FIRST))) as s:
        s.wait_first_poll()
        assert wait_for(lambda: s.state() == "watching"), s.watch()
        assert s.server.add_message(new_message(2)) == 1
        assert wait_for(lambda: len(s.delivered()) == 2), s.triggers()
        assert wait_for(lambda: s.triggers() == ["push", "schedule"]), s.triggers()


def test_a_server_without_idle_is_polled_only(tmp_path: Path, sqlite_url: str):
    script = ImapScript(folders=inbox(FIRST), idle=False)
    with scene(tmp_path, sqlite_url, script) as s:
        assert wait_for(lambda: s.state() == "unsupported"), s.watch()
        row = s.watch()
        assert row is not None and "IDLE" in row.reason
        assert "IDLE" not in s.server.command_names()
        s.wait_first_poll()  # positive control: polling goes on


def test_bye_during_idle_reconnects_and_still_delivers(tmp_path: Path, sqlite_url: str):
    with scene(tmp_path, sqlite_url, ImapScript(folders=inbox(FIRST))) as s:
        s.wait_first_poll()
        assert wait_for(lambda: s.state() == "watching")
        idles = s.server.command_names().count("IDLE")
        assert s.server.notify(b"* BYE [UNAVAILABLE] Server shutting down\r\n", bye=True) == 1
        assert wait_for(lambda: s.server.command_names().count("IDLE") > idles, 20)
        assert wait_for(lambda: s.state() == "watching")
        s.server.add_message(new_message(2))
        assert wait_for(lambda: len(s.delivered()) == 2), s.triggers()
        assert s.triggers()[0] == "push"


def test_a_silent_connection_is_found_by_the_keepalive_and_replaced(
    tmp_path: Path, sqlite_url: str
):
    script = ImapScript(folders=inbox(FIRST), idle_silent=True)
    with scene(tmp_path, sqlite_url, script, keepalive=5) as s:
        assert wait_for(lambda: s.state() == "watching")
        sessions = s.server.sessions
        # DONE goes unanswered: within keepalive (5 s) + poll.timeout (2 s) the watcher
        # gives up on it and opens a new connection
        said = "no answer to the keepalive within 2 s; reconnecting"
        assert wait_for(lambda: said in s.serve.log, 20), s.serve.log
        assert wait_for(lambda: s.server.sessions > sessions + 1, 20)  # + the poll's own
        assert wait_for(lambda: s.state() == "watching")
        assert "DONE" in s.server.commands


def test_a_flood_of_changes_asks_for_one_poll(tmp_path: Path, sqlite_url: str):
    with scene(tmp_path, sqlite_url, ImapScript(folders=inbox(FIRST))) as s:
        s.wait_first_poll()
        assert wait_for(lambda: s.state() == "watching")
        s.server.script.folders["INBOX"].messages.append(new_message(2))
        flood = b"".join(b"* %d EXISTS\r\n* 1 RECENT\r\n" % n for n in range(2, 5002))
        s.server.notify(flood)
        assert wait_for(lambda: len(s.delivered()) == 2), s.triggers()
        time.sleep(1.0)  # more polls would have started by now
        assert s.triggers() == ["push", "schedule"]
        assert wait_for(lambda: s.events() >= 10_000)  # each change counted, one poll asked


def test_new_mail_during_a_poll_asks_for_one_more_poll_after_it(tmp_path: Path, sqlite_url: str):
    script = ImapScript(folders=inbox(FIRST), listing_pace=1.5)  # each poll lists for 1.5 s
    with scene(tmp_path, sqlite_url, script) as s:
        s.wait_first_poll()
        assert wait_for(lambda: s.state() == "watching")

        def running() -> bool:
            runs = s.home.app.accounts.runs_of(s.account.id)
            return bool(runs) and runs[0].trigger == "push" and runs[0].finished_at is None

        s.server.add_message(new_message(2))
        assert wait_for(running), s.triggers()
        s.server.add_message(new_message(3))  # while that poll runs
        assert wait_for(lambda: len(s.delivered()) == 3, 20), s.triggers()

        def second_push_poll_ended() -> bool:
            runs = s.home.app.accounts.runs_of(s.account.id)
            return len(runs) >= 3 and all(run.finished_at is not None for run in runs)

        # the request waits for the first poll's lease: the scheduler takes it within
        # IDLE_WAIT + REQUESTS_EVERY (2 s) of that poll's end, later on a loaded machine
        assert wait_for(second_push_poll_ended, 20), s.triggers()
        time.sleep(2.5)  # a third push poll would have started by now
        runs = s.home.app.accounts.runs_of(s.account.id)
        assert [run.trigger for run in runs] == ["push", "push", "schedule"]
        first_push_end = runs[1].finished_at
        assert first_push_end is not None and runs[0].started_at >= first_push_end


def test_sigterm_ends_idle_with_done_and_logout(tmp_path: Path, sqlite_url: str):
    with scene(tmp_path, sqlite_url, ImapScript(folders=inbox(FIRST))) as s:
        s.wait_first_poll()
        assert wait_for(lambda: s.state() == "watching")
        before = len(s.server.commands)
        assert s.serve.stop() == 0  # SIGTERM
        said = [c.split(" ", 1)[0].upper() for c in s.server.commands[before:]]
        assert said[:2] == ["DONE", "LOGOUT"], said
        assert s.state() is None  # the row is released


def test_a_refused_login_waits_for_a_poll_that_signs_in(tmp_path: Path, sqlite_url: str):
    script = ImapScript(folders=inbox(FIRST), password="changed-at-the-provider")
    with scene(tmp_path, sqlite_url, script) as s:
        assert wait_for(lambda: s.state() == "waiting"), s.watch()
        row = s.watch()
        assert row is not None and "rejected the login" in row.reason
        logins = s.server.command_names().count("LOGIN")
        time.sleep(6.0)  # longer than a sync: the watcher does not try again by itself
        assert s.server.command_names().count("LOGIN") == logins
        s.server.script.password = "secret"  # the provider takes the stored one again
        s.home.app.accounts.request_fetch(s.account.id, Trigger.CLI)
        assert wait_for(lambda: s.state() == "watching", 20), s.watch()
        assert wait_for(lambda: len(s.delivered()) == 1)


def test_the_watch_follows_the_account_switched_off_edited_and_on(tmp_path: Path, sqlite_url: str):
    with scene(tmp_path, sqlite_url, ImapScript(folders=inbox(FIRST))) as s:
        assert wait_for(lambda: s.state() == "watching")
        s.home.app.accounts.set_active(s.account.id, False)
        assert wait_for(lambda: s.state() is None, 10)  # left within a sync (5 s)
        assert wait_for(lambda: not s.server.idlers)
        assert s.server.command_names()[-2:] == ["DONE", "LOGOUT"]
        s.home.app.accounts.set_active(s.account.id, True)
        assert wait_for(lambda: s.state() == "watching", 20), (s.watch(), s.serve.log)
        s.home.app.accounts.edit(s.account.id, replace(s.account.spec, push=False))
        assert wait_for(lambda: s.state() is None, 10)
        assert wait_for(lambda: not s.server.idlers)
