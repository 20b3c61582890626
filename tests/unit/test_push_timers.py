"""The push watcher's agenda: a watch comes due at its next time, once, at the earliest time
it was armed for; stale and dropped entries are skipped; connections wait in line."""

from __future__ import annotations

import math

from mailhaul.domain.account import Account, AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.services.push_timers import Timers
from mailhaul.services.push_watch import Watch, WatchState

SPEC = AccountSpec(
    owner="ann@a.test",
    protocol=Protocol.IMAP,
    host="imap.example.net",
    port=993,
    security=Security.SSL,
    username="ann",
)


def watch(number: int, next_at: float) -> Watch:
    found = Watch(Account(id=number, spec=SPEC), WatchState.CONNECTING, 0.0, generation=number)
    found.next_at = next_at
    return found


def test_watches_come_due_in_time_order_and_only_once_their_time_came() -> None:
    agenda = Timers()
    late, early = watch(1, 20.0), watch(2, 10.0)
    agenda.arm(late)
    agenda.arm(early)
    assert list(agenda.due(5.0)) == []  # control below: nothing is due before its time
    assert agenda.soonest() == 10.0
    assert list(agenda.due(25.0)) == [early, late]
    assert list(agenda.due(100.0)) == []  # each once, until armed again
    assert late.due == math.inf


def test_arming_earlier_wins_and_the_later_entry_goes_stale() -> None:
    agenda = Timers()
    one = watch(1, 30.0)
    agenda.arm(one)
    one.request_at = 5.0  # new mail heard: a poll to ask for first
    agenda.arm(one)
    assert [w.due for w in agenda.due(6.0)] == [math.inf]  # came due at 5, taken
    one.request_at = None
    agenda.arm(one)  # armed again for its keepalive at 30 (the first entry, now live again)
    assert list(agenda.due(29.0)) == []
    assert list(agenda.due(31.0)) == [one]
    assert list(agenda.due(31.0)) == []  # the duplicate entry at 30 is stale


def test_arming_later_keeps_the_earlier_time() -> None:
    agenda = Timers()
    one = watch(1, 10.0)
    agenda.arm(one)
    one.next_at = 50.0
    agenda.arm(one)
    assert list(agenda.due(10.0)) == [one]  # looked at early: it finds nothing and re-arms
    agenda.arm(one)
    assert list(agenda.due(49.0)) == []
    assert list(agenda.due(50.0)) == [one]


def test_dropped_watches_never_come_due() -> None:
    agenda = Timers()
    kept, dropped = watch(1, 1.0), watch(2, 1.0)
    agenda.arm(kept)
    agenda.arm(dropped)
    dropped.generation = -1
    assert list(agenda.due(2.0)) == [kept]


def test_a_connection_being_opened_or_waiting_in_line_is_not_armed() -> None:
    agenda = Timers()
    opening, queued, ready = watch(1, 0.0), watch(2, 0.0), watch(3, 0.0)
    opening.connecting = True
    agenda.queue(queued)
    agenda.queue(queued)  # once in line, however often queued
    for each in (opening, queued, ready):
        agenda.arm(each)
    assert list(agenda.due(1.0)) == [ready]
    assert agenda.waiting()
    assert agenda.next_in_line() is queued
    assert not queued.queued
    assert agenda.next_in_line() is None
    assert not agenda.waiting()
