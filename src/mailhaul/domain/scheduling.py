"""Schedule maths: when an account is polled next."""

from __future__ import annotations

MAX_BACKOFF = 6 * 3600.0


def next_poll_at(now: float, interval: int, consecutive_failures: int = 0) -> float:
    """The next poll time: one interval after a success, backing off after failures.

    Each failure in a row doubles the wait, capped at six hours (or the interval, if it is
    longer).
    """
    if consecutive_failures <= 0:
        return now + interval
    wait = float(interval) * float(1 << min(consecutive_failures - 1, 16))
    return now + min(wait, max(MAX_BACKOFF, float(interval)))
