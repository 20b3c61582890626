"""Watcher connections are opened at most ``push.connects_per_second`` a second: a restart
with thousands of accounts spreads its TLS sessions, and the loop is told when the next
may start (it waits for that, rather than spinning)."""

from __future__ import annotations

import time

from mailhaul.services.push_connect import Connector


def test_opens_are_spread_at_the_configured_rate():
    connector = Connector(lambda _account: None, lambda: None)
    start = time.monotonic()
    connector.may_start(start, 5.0)  # the bucket's time starts here
    allowed = [t / 100 for t in range(0, 1000) if connector.may_start(start + t / 100, 5.0)]
    assert 48 <= len(allowed) <= 52  # ten seconds at 5 a second
    last = start + allowed[-1]
    assert last < connector.next_start(last, 5.0) <= last + 0.2  # spent: wait for it
    assert connector.next_start(start + 20.0, 5.0) == start + 20.0  # refilled
    connector.stop()
