"""The serve loop: due accounts get polled, a stop request ends it cleanly."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from mailhaul.adapters.db.push_watches import PushWatchStore, WatchRow
from mailhaul.adapters.db.workers import WorkerStore
from mailhaul.domain.account import Trigger
from mailhaul.domain.options import Protocol
from mailhaul.services.scheduler import PollLimits, Scheduler
from support.harness import Harness


def test_due_accounts_are_polled_and_stop_ends_the_loop(imap: Harness):
    imap.server.add(b"Subject: one\r\n\r\nx\r\n")
    first = imap.add()
    second = imap.add(keep=True)
    app = imap.app
    scheduler = Scheduler(app.db, app.account_store, imap.poller, PollLimits(workers=2))
    thread = threading.Thread(target=scheduler.run, kwargs={"grace": 5})
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = [app.accounts.runs_of(a.id) for a in (first, second)]
        if all(r and r[0].result != "running" for r in runs):
            break
        time.sleep(0.05)
    scheduler.stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    for account in (first, second):
        state = app.accounts.get(account.id)
        assert state.last_result == "ok"
        assert state.next_poll_at is not None
        assert state.next_poll_at > time.time() + 200  # one interval (300 s) later


def test_inactive_accounts_are_not_polled(imap: Harness):
    inactive = imap.add()
    active = imap.add()  # the positive control: due at the same time, and polled
    app = imap.app
    app.accounts.set_active(inactive.id, False)
    # Two workers: a scheduler that ignored the flag would claim both in its first round.
    scheduler = Scheduler(app.db, app.account_store, imap.poller, PollLimits(workers=2))
    thread = threading.Thread(target=scheduler.run, kwargs={"grace": 5})
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runs = app.accounts.runs_of(active.id)
        if runs and runs[0].result != "running":
            break
        time.sleep(0.05)
    scheduler.stop.set()
    thread.join(timeout=10)  # polls in hand finish (grace) before run() returns
    assert not thread.is_alive()
    assert app.accounts.get(active.id).last_result == "ok"
    assert app.accounts.runs_of(inactive.id) == []


def _claimed(imap: Harness, cap: int | None, watching: int) -> list[int]:
    app = imap.app
    limits = PollLimits(workers=4, connection_cap=lambda host: cap)
    scheduler = Scheduler(app.db, app.account_store, imap.poller, limits)
    scheduler.watching = lambda mailbox: watching
    claims = scheduler._claim({})
    with app.db.begin() as conn:  # give the leases back: the next call claims afresh
        for claim in claims:
            app.account_store.release(conn, claim.account_id, claim.owner)
    return sorted(claim.account_id for claim in claims)


def test_polls_of_one_remote_mailbox_stay_within_its_connection_cap(imap: Harness):
    # Two accounts on one remote mailbox (host and user name: different folders, say),
    # one on another: providers count connections per mailbox, not per account.
    first = imap.add()
    second = imap.add(folders=("Sent",))
    other = imap.app.accounts.add(replace(first.spec, username="someone-else"), "s3cret-pw")
    everyone = sorted([first.id, second.id, other.id])
    assert _claimed(imap, cap=None, watching=0) == everyone
    assert _claimed(imap, cap=2, watching=0) == everyone  # two polls fit into two
    # A push watch holds one of the two: one poll of that mailbox at a time.
    claimed = _claimed(imap, cap=2, watching=1)
    assert other.id in claimed and len(claimed) == 2
    # A cap of one still lets one poll run (never starved by a watch).
    assert len(_claimed(imap, cap=1, watching=1)) == 2


def test_other_processes_polls_and_watches_count_against_the_cap(imap: Harness):
    # A cap of 2 on the mailbox; another worker (beating) polls `polled` and watches
    # `watched` on one connection: that is the cap, so none of our polls of the mailbox
    # starts; the account on another mailbox (the control) does.
    polled, watched, ours = imap.add(), imap.add(folders=("Sent",)), imap.add(folders=("A",))
    control = imap.app.accounts.add(replace(polled.spec, username="someone-else"), "s3cret-pw")
    app, now, other = imap.app, time.time(), "elsewhere:4242:0badc0de"
    with app.db.begin() as conn:
        WorkerStore().register(conn, other, now)
        assert app.account_store.claim(conn, polled.id, other, now, 60)  # its poll
        store = PushWatchStore()
        assert store.claim(conn, [watched.id], other, now, 60) == {watched.id}
        store.report(conn, other, [WatchRow(watched.id, other, "watching", now, connections=1)])
    limits = PollLimits(workers=4, connection_cap=lambda host: 2)
    scheduler = Scheduler(app.db, app.account_store, imap.poller, limits)
    scheduler._beat(register=True)  # it sees the other worker beating

    def claimed() -> set[int]:
        claims = scheduler._claim({})
        with app.db.begin() as conn:
            for claim in claims:
                app.account_store.release(conn, claim.account_id, claim.owner)
        return {claim.account_id for claim in claims}

    assert claimed() == {control.id}
    with app.db.begin() as conn:  # its poll ended: the watch leaves room for one of ours
        app.account_store.release(conn, polled.id, other)
    found = claimed()
    assert control.id in found and len(found & {polled.id, watched.id, ours.id}) == 1


def test_the_per_host_limit_counts_each_source_host_apart(imap: Harness):
    # poll.per_host_limit 1: one poll per source host at a time, whatever the protocol.
    first = imap.add()
    second = imap.add(folders=("Sent",))  # the same host: waits for its turn
    elsewhere = imap.app.accounts.add(replace(first.spec, host="localhost"), "s3cret-pw")
    pop3 = imap.app.accounts.add(replace(first.spec, protocol=Protocol.POP3), "s3cret-pw")
    app = imap.app
    scheduler = Scheduler(
        app.db, app.account_store, imap.poller, PollLimits(workers=4, per_host_limit=1)
    )
    claims = scheduler._claim({})
    hosts = sorted(claim.host for claim in claims)
    assert hosts == sorted([first.spec.host, "localhost"])
    assert elsewhere.id in {claim.account_id for claim in claims}
    assert len({first.id, second.id, pop3.id} & {c.account_id for c in claims}) == 1


def test_each_protocol_of_a_remote_mailbox_has_a_cap_of_its_own(imap: Harness):
    # Servers count IMAP and POP3 connections apart (Gmail's 15 are IMAP's): a POP3
    # account of the same user on the same host is not held back by an IMAP poll.
    first = imap.add()
    second = imap.add(folders=("Sent",))  # the control: IMAP too, so it shares the cap
    pop3 = imap.app.accounts.add(replace(first.spec, protocol=Protocol.POP3), "s3cret-pw")
    claimed = _claimed(imap, cap=1, watching=0)
    assert len(claimed) == 2 and pop3.id in claimed
    assert len({first.id, second.id} & set(claimed)) == 1


def test_a_fetch_now_held_back_by_a_limit_stays_asked_for(imap: Harness):
    # Three "fetch now" requests for one remote mailbox under a cap of one poll at a time:
    # one starts, the others wait for their turn and are not forgotten.
    accounts = [imap.add() for _ in range(3)]
    service = imap.app.accounts
    for account in accounts:
        service.request_fetch(account.id, Trigger.WEB)
    claimed = _claimed(imap, cap=1, watching=0)
    assert len(claimed) == 1
    waiting = [a.id for a in accounts if a.id not in claimed]
    assert all(service.get(i).fetch_requested_at is not None for i in waiting)
    assert service.get(claimed[0]).fetch_requested_at is None  # the control: it was taken
    app = imap.app
    scheduler = Scheduler(app.db, app.account_store, imap.poller, PollLimits(workers=4))
    asked = {claim.account_id: claim.trigger for claim in scheduler._claim({})}
    assert {i: asked[i] for i in waiting} == {i: Trigger.WEB for i in waiting}  # the web's
    assert asked[claimed[0]] == Trigger.SCHEDULE  # its request was used up by its claim
