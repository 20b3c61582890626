"""The service against hostile sources: dripping and flooding servers do not starve a
healthy account, and a stop ends every poll within the grace period whatever the servers do
(the scheduler in-process, then `mailhaul serve` itself with SIGTERM)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mailhaul.bootstrap import App, init_home
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.services.scheduler import PollLimits, Scheduler
from mailhaul.settings import load_settings
from support.hostile import HostileImap, HostileLmtp, HostilePop3, HostileServer, Misbehaviour
from support.processes import ServeProcess


def make_app(path: Path, timeout: float) -> App:
    settings = load_settings(path, {"poll.timeout": timeout}, environ={})
    init_home(settings)
    return App(settings)


def add_account(app: App, server: HostileServer) -> Account:
    protocol = Protocol.POP3 if isinstance(server, HostilePop3) else Protocol.IMAP
    spec = AccountSpec(
        owner="owner@example.org",
        protocol=protocol,
        host="127.0.0.1",
        port=server.port,
        security=Security.NONE,
        username=f"user{server.port}",  # one mailbox each: no connection cap shared
        options=RetrievalOptions(),
    )
    return app.accounts.add(spec, "pw")


@contextlib.contextmanager
def hostile_servers() -> Iterator[list[HostileServer]]:
    """Four dripping sources (IMAP and POP3) and two flooding ones."""
    servers: list[HostileServer] = [
        HostileImap(Misbehaviour("drip", "greeting", start=b"* OK ")),
        HostileImap(Misbehaviour("drip", "SELECT", start=b"* OK ")),
        HostilePop3(Misbehaviour("drip", "greeting", start=b"+OK ")),
        HostilePop3(Misbehaviour("drip", "UIDL", start=b"+OK\r\n1 uid-")),
        HostileImap(
            Misbehaviour("flood", "UID FETCH 1:*", line=lambda i: b"* 1 FETCH (FLAGS ())\r\n")
        ),
        HostileImap(Misbehaviour("flood", "SELECT", line=lambda i: b"* NO busy, hold on\r\n")),
    ]
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(server)
        yield servers


def last_run(app: App, account: Account) -> Any:
    runs = app.accounts.runs_of(account.id, 1)
    return runs[0] if runs else None


def wait_until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_hostile_sources_do_not_starve_a_healthy_account(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home", timeout=1.0)
    with hostile_servers() as servers, HostileImap(Misbehaviour("silence", "NEVER")) as healthy:
        hostile = [add_account(app, server) for server in servers]  # due first
        good = add_account(app, healthy)
        scheduler = Scheduler(
            app.db, app.account_store, app.poller, PollLimits(workers=4, per_host_limit=10)
        )
        thread = threading.Thread(target=scheduler.run, kwargs={"grace": 5})
        started = time.monotonic()
        thread.start()
        try:
            polled = wait_until(
                lambda: (
                    (last_run(app, good) or None) is not None and last_run(app, good).result == "ok"
                ),
                20,
            )
            waited = time.monotonic() - started
        finally:
            scheduler.stop.set()
            thread.join(30)
        assert not thread.is_alive()
        assert polled, "the healthy account was not polled within 20 s"
        assert waited < 20
        assert healthy.deletions  # its message was delivered and deleted
        for account, server in zip(hostile, servers, strict=True):
            run = last_run(app, account)
            assert run is not None and run.result == "error", (server.misbehaviour, run)
            assert server.deletions == []
    app.db.dispose()


def test_a_stop_cuts_polls_held_by_hostile_servers_after_the_grace_period(tmp_path: Path) -> None:
    # poll.timeout 30: a command would get a minute; the stop must not wait for that.
    app = make_app(tmp_path / "home", timeout=30.0)
    with hostile_servers() as servers:
        servers = servers[:4]  # the dripping ones: four workers, all held
        accounts = [add_account(app, server) for server in servers]
        scheduler = Scheduler(
            app.db, app.account_store, app.poller, PollLimits(workers=4, per_host_limit=10)
        )
        thread = threading.Thread(target=scheduler.run, kwargs={"grace": 1.0})
        thread.start()
        try:
            assert wait_until(lambda: all(s.misbehaved.is_set() for s in servers), 20)
            time.sleep(0.5)
        finally:
            stopped = time.monotonic()
            scheduler.stop.set()
            thread.join(30)
        assert not thread.is_alive()
        # Within the grace period (1 s) and the few seconds the cut polls get to record.
        assert wait_until(lambda: all(last_run(app, a).result != "running" for a in accounts), 10)
        assert time.monotonic() - stopped < 8
        for account, server in zip(accounts, servers, strict=True):
            run = last_run(app, account)
            assert run.result == "error"
            assert "the service is stopping" in (run.error or ""), run.error
            assert server.deletions == []
            app.poller.leases.claim(account.id, "next")  # the lease was given back
    app.db.dispose()


def test_sigterm_ends_serve_within_its_grace_period(tmp_path: Path) -> None:
    home = tmp_path / "home"
    app = make_app(home, timeout=30.0)
    with hostile_servers() as servers:
        servers = servers[:4]
        for server in servers:
            add_account(app, server)
        app.db.dispose()
        env = {"MAILHAUL_POLL_TIMEOUT": "30", "MAILHAUL_POLL_STOP_GRACE": "2"}
        serve = ServeProcess(home, env=env).start()
        try:
            assert wait_until(lambda: all(s.misbehaved.is_set() for s in servers), 30), serve.log
        finally:
            started = time.monotonic()
            code = serve.stop(timeout=30)
        took = time.monotonic() - started
        assert code == 0, serve.log
        assert took < 2 + 8, f"serve took {took:.1f} s to stop:\n{serve.log}"
        assert "cutting their connections" in serve.log
        assert all(server.deletions == [] for server in servers)


def test_a_stop_cuts_a_delivery_held_by_a_silent_lmtp_peer(tmp_path: Path) -> None:
    with HostileLmtp(Misbehaviour("silence", "end of data")) as lmtp:
        overrides = {
            "poll.timeout": 30.0,
            "delivery.method": "lmtp",
            "delivery.lmtp": f"127.0.0.1:{lmtp.port}",
            "delivery.timeout": 60.0,
        }
        settings = load_settings(tmp_path / "home", overrides, environ={})
        init_home(settings)
        app = App(settings)
        with HostileImap(Misbehaviour("silence", "NEVER")) as imap:
            account = add_account(app, imap)
            scheduler = Scheduler(app.db, app.account_store, app.poller, PollLimits(workers=1))
            thread = threading.Thread(target=scheduler.run, kwargs={"grace": 1.0})
            thread.start()
            try:
                assert wait_until(lambda: lmtp.misbehaved.is_set(), 20)
            finally:
                stopped = time.monotonic()
                scheduler.stop.set()
                thread.join(30)
            assert wait_until(lambda: last_run(app, account).result != "running", 10)
            assert time.monotonic() - stopped < 8
            run = last_run(app, account)
            assert run.result == "error"
            assert "the service is stopping" in (run.error or ""), run.error
            assert imap.deletions == []
            assert run.fetched == 0
        app.db.dispose()
