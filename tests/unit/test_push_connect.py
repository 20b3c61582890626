"""Watcher connections are opened at most ``push.connects_per_second`` a second: a restart
with thousands of accounts spreads its TLS sessions, and the loop is told when the next
may start (it waits for that, rather than spinning)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from mailhaul.services.push_connect import Connector
from mailhaul.services.push_plan import Target


def test_opens_are_spread_at_the_configured_rate():
    connector = Connector(lambda _account, _target: None, lambda: None)
    start = time.monotonic()
    connector.may_start(start, 5.0)  # the bucket's time starts here
    allowed = [t / 100 for t in range(0, 1000) if connector.may_start(start + t / 100, 5.0)]
    assert 48 <= len(allowed) <= 52  # ten seconds at 5 a second
    last = start + allowed[-1]
    assert last < connector.next_start(last, 5.0) <= last + 0.2  # spent: wait for it
    assert connector.next_start(start + 20.0, 5.0) == start + 20.0  # refilled
    connector.stop()


def test_an_open_that_fails_unexpectedly_is_reported_not_lost():
    # A bug in opening (here a ValueError) must come back as a failed open, so that the
    # watch tries again later instead of "connecting" for ever.
    def broken(_account: object, _target: object) -> None:
        raise ValueError("boom")

    connector = Connector(broken, lambda: None)
    account = SimpleNamespace(id=7)
    connector.start(account, Target("INBOX"), 1, 5.0)  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    found = connector.results()
    while not found and time.monotonic() < deadline:
        time.sleep(0.01)
        found = connector.results()
    connector.stop()
    assert len(found) == 1 and found[0].link is None
    assert found[0].error is not None and "ValueError: boom" in str(found[0].error)
