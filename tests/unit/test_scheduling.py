"""Backoff, the login-failure pause and jitter, against a fixed clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhaul.domain.scheduling import PAUSED_LOGIN, Outcome, SchedulePolicy, after_run

NOW = 1_000_000.0
NO_JITTER = SchedulePolicy(jitter=0.0, max_backoff=6 * 3600, auth_failures_to_pause=5)


def run_series(outcomes: list[Outcome], policy: SchedulePolicy = NO_JITTER):
    state, failures, result = "new", 0, []
    for outcome in outcomes:
        nxt = after_run(NOW, 300, outcome, state, failures, policy, spread=0.5)
        state, failures = nxt.state.value, nxt.failures
        result.append(nxt)
    return result


def test_success_waits_one_interval_and_forgives_failures():
    series = run_series([Outcome.ERROR, Outcome.ERROR, Outcome.OK])
    assert series[-1].at == NOW + 300
    assert series[-1].failures == 0


def test_temporary_errors_back_off_exponentially_up_to_the_cap():
    series = run_series([Outcome.ERROR] * 12)
    waits = [n.at - NOW for n in series]
    assert waits[:4] == [300, 600, 1200, 2400]
    assert max(waits) == 6 * 3600


def test_login_failures_back_off_harder_and_pause_after_five():
    series = run_series([Outcome.LOGIN_FAILED] * 5)
    assert [n.at - NOW for n in series[:3]] == [300, 1200, 4800]
    assert [n.paused_reason for n in series[:4]] == [None] * 4
    assert series[4].paused_reason == PAUSED_LOGIN


def test_a_different_kind_of_failure_counts_anew():
    series = run_series([Outcome.LOGIN_FAILED] * 4 + [Outcome.ERROR, Outcome.LOGIN_FAILED])
    assert series[4].failures == 1
    assert series[5].failures == 1
    assert series[5].paused_reason is None


@given(st.floats(0, 0.999999), st.integers(10, 86400))
def test_jitter_stays_within_ten_percent(spread: float, interval: int):
    nxt = after_run(NOW, interval, Outcome.OK, "ok", 0, SchedulePolicy(), spread)
    assert interval * 0.9 - 1e-6 <= nxt.at - NOW <= interval * 1.1 + 1e-6


def test_jitter_spreads_accounts_with_one_interval():
    times = {
        round(after_run(NOW, 300, Outcome.OK, "ok", 0, SchedulePolicy(), i / 1000).at)
        for i in range(1000)
    }
    assert len(times) > 50  # 1,000 accounts land on more than 50 distinct seconds
