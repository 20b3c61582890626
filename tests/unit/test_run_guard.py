"""RunGuard: the stall limit, the total deadline and cancellation of one run."""

from __future__ import annotations

import threading

from mailhaul.domain.deadlines import RunGuard, RunningGuards, current_guard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_run_without_progress_for_the_stall_limit_must_stop() -> None:
    clock = Clock()
    guard = RunGuard(stall_timeout=60, clock=clock)
    clock.now += 59
    assert guard.problem() is None
    assert guard.remaining() == 1
    guard.progress()  # a command answered: the clock starts again
    clock.now += 59
    assert guard.problem() is None
    clock.now += 1
    assert "no progress for 60 s" in (guard.problem() or "")
    assert guard.remaining() == 0


def test_the_total_deadline_holds_whatever_the_progress() -> None:
    clock = Clock()
    guard = RunGuard(total=40, clock=clock)
    for _ in range(39):
        clock.now += 1
        guard.progress()
    assert guard.problem() is None
    assert guard.problem(slack=1) is not None
    clock.now += 1
    assert "gave up after 40 s" in (guard.problem() or "")


def test_an_unlimited_guard_never_stops_a_run() -> None:
    clock = Clock()
    guard = RunGuard(clock=clock)
    clock.now += 10**9
    assert guard.problem() is None
    assert guard.remaining() is None


def test_cancel_calls_every_registered_closer_once_and_later_ones_at_once() -> None:
    guard = RunGuard()
    calls: list[str] = []
    guard.register(lambda: calls.append("a"))
    unregister = guard.register(lambda: calls.append("gone"))
    unregister()
    guard.cancel("stopping")
    guard.cancel("again")
    assert calls == ["a"]
    assert guard.problem() == "stopping"
    guard.register(lambda: calls.append("late"))
    assert calls == ["a", "late"]


def test_the_running_guards_are_found_and_cancelled_from_another_thread() -> None:
    running = RunningGuards()
    inside = threading.Event()
    release = threading.Event()
    seen: list[RunGuard] = []

    def run() -> None:
        with running.track(RunGuard()) as guard:
            seen.append(current_guard())
            assert current_guard() is guard
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=run)
    thread.start()
    assert inside.wait(5)
    assert len(running) == 1
    assert running.cancel_all("the service is stopping") == 1
    assert seen[0].problem() == "the service is stopping"
    release.set()
    thread.join(5)
    assert len(running) == 0
    assert current_guard() is not seen[0]  # outside a run: a fresh, unlimited guard
