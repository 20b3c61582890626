"""Schedule maths: when an account is polled next, and when it is paused."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_BACKOFF = 6 * 3600.0
PAUSED_LOGIN = "login failed: check the password"


class RunResult(StrEnum):
    """A run row's result: ``running`` until the run ends ``ok`` or with an ``error``;
    ``interrupted`` when its process stopped first (found by the next run)."""

    OK = "ok"
    ERROR = "error"
    RUNNING = "running"
    INTERRUPTED = "interrupted"


class PollResult(StrEnum):
    """How a poll someone asked for ended: it ran (``ok``, ``error``; counted in the
    metrics) or why it did not run."""

    OK = "ok"
    ERROR = "error"
    BUSY = "busy"  # another process was polling the account
    NOT_FOUND = "not found"
    DISABLED = "disabled"
    PAUSED = "paused"
    SIGN_IN_NEEDED = "sign-in needed"  # OAuth2: not connected, or the grant was refused
    QUEUED = "queued"  # the running service had not polled it within the wait


POLL_BLOCKED = frozenset({PollResult.DISABLED, PollResult.PAUSED, PollResult.SIGN_IN_NEEDED})
"""Results of a poll refused because of the account's state (``mailhaul fetch`` exits 5)."""


class Outcome(StrEnum):
    """How a run ended, as the schedule sees it (also the account's state)."""

    OK = "ok"
    ERROR = "error"
    LOGIN_FAILED = "login failed"
    DESTINATION_MISSING = "destination missing"


@dataclass(frozen=True)
class SchedulePolicy:
    """The knobs: jitter, backoff cap, and login failures tolerated before a pause."""

    jitter: float = 0.1
    max_backoff: float = MAX_BACKOFF
    auth_failures_to_pause: int = 5


@dataclass(frozen=True)
class NextRun:
    """What a finished run means for the account's schedule."""

    at: float
    failures: int
    state: Outcome
    paused_reason: str | None = None


def after_run(
    now: float,
    interval: int,
    outcome: Outcome,
    previous_state: str,
    previous_failures: int,
    policy: SchedulePolicy,
    spread: float,
) -> NextRun:
    """The next poll after a run that ended with ``outcome``.

    - Success: one interval later.
    - Failures of the same kind in a row double the wait (login failures quadruple it:
      providers lock accounts that keep failing), capped at ``policy.max_backoff`` or
      the interval if that is longer. A different kind of failure starts counting anew.
    - After ``policy.auth_failures_to_pause`` login failures in a row, the account is
      paused until its password is edited or it is enabled again.
    ``spread`` (0 ≤ spread < 1, from the caller's random source) moves the time by up to
    ±``policy.jitter`` of the wait, so accounts with one interval drift apart.
    """
    if outcome is Outcome.OK:
        failures, wait, paused = 0, float(interval), None
    else:
        failures = previous_failures + 1 if previous_state == outcome.value else 1
        factor = 4 if outcome is Outcome.LOGIN_FAILED else 2
        wait = float(interval) * float(factor ** min(failures - 1, 16))
        wait = min(wait, max(policy.max_backoff, float(interval)))
        paused = (
            PAUSED_LOGIN
            if outcome is Outcome.LOGIN_FAILED and failures >= policy.auth_failures_to_pause
            else None
        )
    wait *= 1.0 + policy.jitter * (2.0 * spread - 1.0)
    return NextRun(at=now + wait, failures=failures, state=outcome, paused_reason=paused)


def next_poll_at(now: float, interval: int, consecutive_failures: int = 0) -> float:
    """The next poll time without jitter (doubling after failures, capped at six hours)."""
    if consecutive_failures <= 0:
        return now + interval
    wait = float(interval) * float(1 << min(consecutive_failures - 1, 16))
    return now + min(wait, max(MAX_BACKOFF, float(interval)))
