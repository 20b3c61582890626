"""After a late run (a backlog: 10,000 accounts added at once, or a service that was down)
the next poll is spread wider, so accounts that came due together do not stay bunched."""

from __future__ import annotations

import time

from sqlalchemy import update

from mailhaul.adapters.db.tables import accounts
from mailhaul.services.polling import LATE_JITTER
from support.harness import Harness

INTERVAL = 300


def waits_after_polls(harness: Harness, count: int, late_by: float) -> list[float]:
    """Seconds from the end of each account's run to its next poll."""
    ids = [harness.add().id for _ in range(count)]
    with harness.app.db.begin() as conn:
        due = time.time() - late_by
        conn.execute(update(accounts).where(accounts.c.id.in_(ids)).values(next_poll_at=due))
    waits = []
    for account_id in ids:
        harness.poller.poll(account_id)
        state = harness.app.accounts.get(account_id)
        assert state.next_poll_at is not None and state.last_run_at is not None
        waits.append(state.next_poll_at - state.last_run_at)
    return waits


def test_a_run_on_time_keeps_the_usual_ten_percent_jitter(imap: Harness):
    waits = waits_after_polls(imap, 20, late_by=1.0)
    assert all(0.9 * INTERVAL <= w <= 1.1 * INTERVAL for w in waits)


def test_a_late_run_spreads_the_next_poll_over_a_wider_window(imap: Harness):
    waits = waits_after_polls(imap, 40, late_by=120.0)
    low, high = (1 - LATE_JITTER) * INTERVAL, (1 + LATE_JITTER) * INTERVAL
    assert all(low <= w <= high for w in waits)
    assert max(waits) - min(waits) > 0.3 * INTERVAL  # ±10% could not spread them this far
