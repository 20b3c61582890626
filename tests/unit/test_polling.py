"""The polling service against an in-memory source: semantics, faults, crash windows."""

from __future__ import annotations

import pytest

from mailhaul.adapters.db.records import MessageRecords
from mailhaul.domain.errors import AccountBusy, TemporaryDeliveryError, TransientSourceError
from support.harness import Harness

LF = b"\n"


def msg(n: int, extra: bytes = b"") -> bytes:
    return b"Message-ID: <%d@example.net>\r\nSubject: m%d\r\n\r\nbody %d\r\n%s" % (n, n, n, extra)


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", LF)


def test_default_options_deliver_then_delete(harness: Harness):
    for n in range(3):
        harness.server.add(msg(n))
    account = harness.add()
    summary = harness.poller.poll(account.id)
    assert summary.result == "ok" and summary.fetched == 3 and summary.deleted == 3
    assert harness.bodies() == sorted(lf(msg(n)) for n in range(3))
    assert harness.server.messages() == []


def test_keep_delivers_each_message_once_and_leaves_it(harness: Harness):
    harness.server.add(msg(1))
    account = harness.add(keep=True)
    harness.poller.poll(account.id)
    harness.server.add(msg(2))
    second = harness.poller.poll(account.id)
    third = harness.poller.poll(account.id)
    assert (second.fetched, third.fetched) == (1, 0)
    assert harness.bodies() == [lf(msg(1)), lf(msg(2))]
    assert len(harness.server.messages()) == 2
    if not harness.server.pop3:
        assert all(m.seen for m in harness.server.messages())


def test_keep_with_fetchall_never_redelivers(imap: Harness):
    imap.server.add(msg(1), seen=True)
    imap.server.add(msg(2))
    account = imap.add(keep=True, fetchall=True)
    for _ in range(3):
        imap.poller.poll(account.id)
    assert imap.bodies() == [lf(msg(1)), lf(msg(2))]


def test_seen_messages_are_old_unless_fetchall(imap: Harness):
    imap.server.add(msg(1), seen=True)
    imap.server.add(msg(2))
    account = imap.add()
    summary = imap.poller.poll(account.id)
    assert summary.fetched == 1 and imap.bodies() == [lf(msg(2))]
    assert [m.data for m in imap.server.messages()] == [msg(1)]


def test_flush_deletes_old_messages_before_fetching(imap: Harness):
    imap.server.add(msg(1), seen=True)
    imap.server.add(msg(2))
    account = imap.add(keep=True, flush=True)
    imap.poller.poll(account.id)
    assert imap.bodies() == [lf(msg(2))]
    assert [m.data for m in imap.server.messages()] == [msg(2)]
    imap.poller.poll(account.id)  # now msg 2 is old (delivered): flushed, not re-fetched
    assert imap.server.messages() == [] and imap.bodies() == [lf(msg(2))]


def test_pop3_flush_deletes_what_an_earlier_keep_run_fetched(pop3: Harness):
    pop3.server.add(msg(1))
    account = pop3.add(keep=True, flush=True)
    pop3.poller.poll(account.id)
    assert len(pop3.server.messages()) == 1
    pop3.poller.poll(account.id)
    assert pop3.server.messages() == [] and pop3.bodies() == [lf(msg(1))]


def test_message_over_the_size_limit_is_left_and_named_in_the_log(harness: Harness):
    harness.server.add(msg(1, b"x" * 500))
    harness.server.add(msg(2))
    account = harness.add(max_size=200)
    summary = harness.poller.poll(account.id)
    assert summary.result == "ok" and summary.fetched == 1 and summary.skipped == 1
    assert len(harness.server.messages()) == 1
    log = harness.app.accounts.runs_of(account.id)[0].log
    assert "over the size limit" in log


def test_network_drop_mid_message_loses_nothing_and_next_run_picks_up(harness: Harness):
    for n in range(5):
        harness.server.add(msg(n, b"y" * 40))
    account = harness.add()
    uid3 = harness.server.source().select("INBOX").messages[3].uid
    calls = {"n": 0}

    def drop(event: str) -> None:
        if event == f"chunk:{uid3}":
            calls["n"] += 1
            if calls["n"] == 3:
                raise TransientSourceError("connection lost")

    harness.server.fail_at = drop
    first = harness.poller.poll(account.id)
    assert first.result == "error" and "connection lost" in (first.error or "")
    assert first.fetched == 3
    harness.server.fail_at = None
    assert harness.poller.poll(account.id).result == "ok"
    assert harness.bodies() == sorted(lf(msg(n, b"y" * 40)) for n in range(5))
    assert harness.server.messages() == []


def test_disk_full_leaves_the_message_on_the_server(harness: Harness, monkeypatch):
    harness.server.add(msg(1))
    account = harness.add()

    def full(*_a: object) -> None:
        raise TemporaryDeliveryError("cannot write: disk full (or quota exceeded)")

    monkeypatch.setattr("mailhaul.adapters.sinks.maildir.MaildirDelivery.commit", full)
    summary = harness.poller.poll(account.id)
    assert summary.result == "error" and "disk full" in (summary.error or "")
    assert len(harness.server.messages()) == 1
    monkeypatch.undo()
    assert harness.poller.poll(account.id).fetched == 1
    assert harness.bodies() == [lf(msg(1))]


class Crash(BaseException):
    """Stands for SIGKILL: nothing after it runs in the poll."""


def test_crash_between_delivery_and_record_is_resolved_without_duplicates(
    harness: Harness, monkeypatch
):
    for n in range(4):
        harness.server.add(msg(n))
    account = harness.add(keep=True)

    def crash(*_a: object, **_k: object) -> None:
        raise Crash

    monkeypatch.setattr(MessageRecords, "mark_delivered", crash)
    with pytest.raises(Crash):
        harness.poller.poll(account.id)
    monkeypatch.undo()
    assert len(harness.maildir_files()) == 4  # delivered, not recorded
    second = harness.poller.poll(account.id)
    assert second.result == "ok" and second.fetched == 0
    assert harness.bodies() == sorted(lf(msg(n)) for n in range(4))
    assert "4 message(s) had been delivered" in harness.app.accounts.runs_of(account.id)[0].log


def test_crash_before_delivery_refetches_the_message(harness: Harness, monkeypatch):
    harness.server.add(msg(1))
    account = harness.add()

    def crash(event: str) -> None:
        if event.startswith("chunk:"):
            raise Crash

    harness.server.fail_at = crash
    with pytest.raises(Crash):
        harness.poller.poll(account.id)
    harness.server.fail_at = None
    assert harness.maildir_files() == []
    assert harness.poller.poll(account.id).fetched == 1
    assert harness.bodies() == [lf(msg(1))] and harness.server.messages() == []


def test_pop3_delete_lost_at_quit_is_redone_not_redelivered(pop3: Harness, monkeypatch):
    pop3.server.add(msg(1))
    account = pop3.add()
    monkeypatch.setattr("support.fake_source.FakeSource.close", lambda self: None)
    pop3.poller.poll(account.id)  # QUIT never commits the DELE
    monkeypatch.undo()
    assert len(pop3.server.messages()) == 1
    second = pop3.poller.poll(account.id)
    assert second.fetched == 0 and second.deleted == 1
    assert pop3.server.messages() == [] and pop3.bodies() == [lf(msg(1))]


def test_pop3_without_uidl_refuses_keep_but_works_without(pop3: Harness):
    pop3.server.uidl = False
    pop3.server.add(msg(1))
    kept = pop3.add(keep=True)
    summary = pop3.poller.poll(kept.id)
    assert summary.result == "error" and "UIDL" in (summary.error or "")
    plain = pop3.add()
    assert pop3.poller.poll(plain.id).fetched == 1
    assert pop3.server.messages() == []


def test_uidvalidity_change_does_not_redeliver_the_folder(imap: Harness):
    for n in range(3):
        imap.server.add(msg(n))
    account = imap.add(keep=True)
    imap.poller.poll(account.id)
    imap.server.renumber()
    imap.server.add(msg(9))
    summary = imap.poller.poll(account.id)
    assert summary.fetched == 1
    assert imap.bodies() == sorted([lf(msg(n)) for n in range(3)] + [lf(msg(9))])
    log = imap.app.accounts.runs_of(account.id)[0].log
    assert "UIDVALIDITY changed" in log and "3 of 4 message(s) recognised" in log


def test_two_runs_of_one_account_never_overlap(harness: Harness):
    harness.server.add(msg(1))
    account = harness.add()
    inner: list[BaseException] = []

    def nested(event: str) -> None:
        if event == "select" and not inner:
            try:
                harness.poller.poll(account.id)
            except AccountBusy as exc:
                inner.append(exc)

    harness.server.fail_at = nested
    assert harness.poller.poll(account.id).result == "ok"
    assert inner and "being polled" in str(inner[0])
    # the refused run left no trace in the history; the lease was free again afterwards
    assert [run.result for run in harness.app.accounts.runs_of(account.id)] == ["ok"]
    assert harness.poller.poll(account.id).result == "ok"


def test_password_never_reaches_log_error_or_run_history(harness: Harness):
    harness.server.add(msg(1))
    account = harness.add()

    def leak(event: str) -> None:
        raise TransientSourceError("server said: bad password s3cret-pw")

    harness.server.fail_at = leak
    summary = harness.poller.poll(account.id)
    run = harness.app.accounts.runs_of(account.id)[0]
    for text in (summary.error or "", run.log, run.error or ""):
        assert "s3cret-pw" not in text
    assert "server said: bad password ***" in run.log


def test_failures_back_off_and_success_resets(harness: Harness):
    account = harness.add()
    harness.server.fail_at = lambda e: (_ for _ in ()).throw(TransientSourceError("down"))
    harness.poller.poll(account.id)
    harness.poller.poll(account.id)
    state = harness.app.accounts.get(account.id)
    assert state.state == "error" and state.consecutive_failures == 2
    harness.server.fail_at = None
    harness.poller.poll(account.id)
    state = harness.app.accounts.get(account.id)
    assert state.state == "ok" and state.consecutive_failures == 0


def test_stop_request_finishes_the_message_in_hand_and_records_it(harness: Harness):
    import threading

    for n in range(10):
        harness.server.add(msg(n))
    account = harness.add()
    stop = threading.Event()
    first_uid = harness.server.source().select("INBOX").messages[0].uid

    def stop_during_first(event: str) -> None:
        if event == f"chunk:{first_uid}":
            stop.set()

    harness.server.fail_at = stop_during_first
    summary = harness.poller.poll(account.id, stop=stop)
    assert summary.result == "ok"
    assert summary.fetched == 1  # the message in hand, not the other nine
    assert len(harness.server.messages()) == 9
    assert len(harness.bodies()) == 1
    harness.server.fail_at = None
    assert harness.poller.poll(account.id).fetched == 9


def test_kept_imap_mail_is_flagged_seen_even_if_a_run_died_before_flagging(
    imap: Harness, monkeypatch
):
    imap.server.add(msg(1))
    account = imap.add(keep=True)

    def die(*_a: object) -> None:
        raise TransientSourceError("connection lost before the STORE")

    monkeypatch.setattr("support.fake_source.FakeSource.mark_seen", die)
    assert imap.poller.poll(account.id).result == "error"
    monkeypatch.undo()
    assert not imap.server.messages()[0].seen  # delivered and recorded, not flagged
    second = imap.poller.poll(account.id)
    assert second.fetched == 0
    assert imap.server.messages()[0].seen
    assert imap.bodies() == [lf(msg(1))]
