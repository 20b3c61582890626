"""No source server and no delivery peer can hold a worker: floods of untagged responses, an
unsolicited huge literal, endless listings, servers that drip a byte at a time and LMTP
peers that drip or never answer each end the run within its bounds as a temporary error,
with nothing deleted and the account free for the next run."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailhaul.bootstrap import App, init_home
from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.services.polling import RunSummary
from mailhaul.settings import load_settings
from support.hostile import MESSAGE, HostileImap, HostileLmtp, HostilePop3, Misbehaviour

TIMEOUT = 1.0  # poll.timeout: one read; a command gets twice that without progress
BOUND = 15.0  # generous: each run below must end in about 2 s
MEMORY = 64 * 1024 * 1024  # what a flooded run may allocate at its peak


def make_app(path: Path, **settings: Any) -> App:
    overrides = {"poll.timeout": TIMEOUT, "poll.stall_timeout": 30, **settings}
    loaded = load_settings(path, overrides, environ={})
    init_home(loaded)
    return App(loaded)


def add_account(app: App, protocol: Protocol, port: int) -> Account:
    spec = AccountSpec(
        owner="owner@example.org",
        protocol=protocol,
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        username="user",
        options=RetrievalOptions(),
    )
    return app.accounts.add(spec, "pw")


def poll_within(app: App, account: Account, bound: float = BOUND) -> RunSummary:
    """Poll in a thread; fail (instead of hanging) if the poll outlives ``bound``."""
    result: list[RunSummary] = []
    thread = threading.Thread(target=lambda: result.append(app.poller.poll(account.id)))
    started = time.monotonic()
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"the poll was still running after {bound} s"
    assert result, "the poll raised"
    assert time.monotonic() - started < bound
    return result[0]


def poll_measured(app: App, account: Account) -> tuple[RunSummary, int]:
    """``poll_within`` and the peak of memory allocated meanwhile (every thread's)."""
    tracemalloc.start()
    try:
        summary = poll_within(app, account)
        return summary, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_free(app: App, account: Account) -> None:
    """The account's lease was given back: a new run may claim it at once."""
    app.poller.leases.claim(account.id, "next-run")
    app.poller.leases.release(account.id, "next-run")


def assert_temporary_and_untouched(
    app: App, account: Account, summary: RunSummary, server: Any, words: str
) -> None:
    assert summary.result == "error"
    assert summary.error_kind == "network"  # temporary: retried at the next poll
    assert words in (summary.error or ""), summary.error
    assert server.deletions == []
    assert summary.fetched == summary.deleted == 0
    assert_free(app, account)
    log = app.accounts.runs_of(account.id, 1)[0].log
    assert words in log


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path / "home")
    yield app
    app.db.dispose()


def _ok(i: int) -> bytes:
    return b"* OK still thinking about it\r\n"


def _no(i: int) -> bytes:
    return b"* NO something went wrong, carrying on\r\n"


def _exists(i: int) -> bytes:
    return b"* %d EXISTS\r\n" % (i * 1000)


def _flags(i: int) -> bytes:
    return b"* 1 FETCH (FLAGS ())\r\n"


@pytest.mark.parametrize("line", [_ok, _no, _exists, _flags], ids=["ok", "no", "exists", "flags"])
@pytest.mark.parametrize("at", ["SELECT", "UID FETCH 1:*", "UID FETCH 1 BODY"])
def test_an_imap_flood_of_untagged_responses_ends_the_run(
    app: App, line: Callable[[int], bytes], at: str
) -> None:
    with HostileImap(Misbehaviour("flood", at, line=line)) as server:
        account = add_account(app, Protocol.IMAP, server.port)
        summary, peak = poll_measured(app, account)
        assert server.misbehaved.is_set()
    assert peak < MEMORY, f"the run allocated {peak} bytes at its peak"
    assert_temporary_and_untouched(
        app, account, summary, server, "kept sending without answering the command"
    )


def test_an_unsolicited_huge_literal_during_the_listing_ends_the_run(app: App) -> None:
    with HostileImap(Misbehaviour("literal", "UID FETCH 1:*")) as server:
        account = add_account(app, Protocol.IMAP, server.port)
        summary, peak = poll_measured(app, account)
        assert server.misbehaved.is_set()
    assert peak < MEMORY, f"the run allocated {peak} bytes at its peak"
    assert_temporary_and_untouched(app, account, summary, server, "gave up after")


def test_an_imap_server_that_drips_its_answer_ends_the_run(app: App) -> None:
    with HostileImap(Misbehaviour("drip", "SELECT", start=b"* OK ")) as server:
        account = add_account(app, Protocol.IMAP, server.port)
        summary = poll_within(app, account)
    assert_temporary_and_untouched(app, account, summary, server, "gave up after 2 s")


def test_a_pop3_server_that_drips_its_listing_ends_the_run(app: App) -> None:
    with HostilePop3(Misbehaviour("drip", "UIDL", start=b"+OK\r\n1 uid-")) as server:
        account = add_account(app, Protocol.POP3, server.port)
        summary = poll_within(app, account)
        assert server.misbehaved.is_set()
    assert_temporary_and_untouched(app, account, summary, server, "gave up after 2 s")


def test_a_pop3_greeting_dripped_a_byte_at_a_time_ends_the_run(app: App) -> None:
    with HostilePop3(Misbehaviour("drip", "greeting", start=b"+OK ")) as server:
        account = add_account(app, Protocol.POP3, server.port)
        summary = poll_within(app, account)
    assert_temporary_and_untouched(app, account, summary, server, "gave up after 2 s")


def test_an_endless_pop3_listing_ends_the_run(app: App) -> None:
    def uidl_line(i: int) -> bytes:
        return b"%d uid-%d\r\n" % (i, i)

    with HostilePop3(Misbehaviour("flood", "UIDL", line=uidl_line, start=b"+OK\r\n")) as server:
        account = add_account(app, Protocol.POP3, server.port)
        summary, peak = poll_measured(app, account)
    assert peak < 3 * MEMORY, f"the run allocated {peak} bytes at its peak"  # 32 MiB listing
    assert_temporary_and_untouched(app, account, summary, server, "gave up")


def test_well_behaved_servers_are_polled_normally(app: App) -> None:
    """The positive control: the same servers, behaving, deliver and delete."""
    with HostileImap(Misbehaviour("silence", "NEVER")) as imap:
        account = add_account(app, Protocol.IMAP, imap.port)
        summary = poll_within(app, account)
        assert (summary.result, summary.fetched, summary.deleted) == ("ok", 1, 1), summary.error
        assert imap.deletions
    with HostilePop3(Misbehaviour("silence", "NEVER")) as pop3:
        account = add_account(app, Protocol.POP3, pop3.port)
        summary = poll_within(app, account)
        assert (summary.result, summary.fetched, summary.deleted) == ("ok", 1, 1), summary.error
        assert pop3.deletions == ["DELE 1"]


# --- delivery peers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "words"),
    [("silence", "no answer within 1 s"), ("drip", "kept sending without finishing its reply")],
)
def test_an_lmtp_peer_that_never_answers_after_data_ends_the_run(
    tmp_path: Path, mode: str, words: str
) -> None:
    start = b"250" if mode == "drip" else b""  # the drip: a reply begun and never ended
    with HostileLmtp(Misbehaviour(mode, "end of data", start=start)) as lmtp:
        app = make_app(
            tmp_path / "home",
            **{
                "delivery.method": "lmtp",
                "delivery.lmtp": f"127.0.0.1:{lmtp.port}",
                "delivery.timeout": 1.0,
            },
        )
        try:
            with HostileImap(Misbehaviour("silence", "NEVER")) as imap:
                account = add_account(app, Protocol.IMAP, imap.port)
                summary = poll_within(app, account)
            assert lmtp.messages, "the message reached DATA"
            assert summary.result == "error"
            assert summary.error_kind == "delivery"
            assert words in (summary.error or ""), summary.error
            assert imap.deletions == []
            assert summary.fetched == summary.deleted == 0
            assert_free(app, account)
        finally:
            app.db.dispose()


def test_an_lmtp_peer_that_answers_delivers(tmp_path: Path) -> None:
    """The positive control for the LMTP peers above."""
    with HostileLmtp(Misbehaviour("silence", "NEVER")) as lmtp:
        app = make_app(
            tmp_path / "home",
            **{"delivery.method": "lmtp", "delivery.lmtp": f"127.0.0.1:{lmtp.port}"},
        )
        try:
            with HostileImap(Misbehaviour("silence", "NEVER")) as imap:
                account = add_account(app, Protocol.IMAP, imap.port)
                summary = poll_within(app, account)
            assert (summary.result, summary.fetched, summary.deleted) == ("ok", 1, 1)
            assert MESSAGE.split(b"\r\n")[0] in lmtp.messages[0]
        finally:
            app.db.dispose()
