"""Delivery refusals: permanent ones are remembered and skipped, nothing is ever dropped."""

from __future__ import annotations

from dataclasses import replace

from mailhaul.adapters.db.records import MessageRecords
from mailhaul.adapters.sinks.maildir import MaildirDelivery, MaildirSession, MaildirSink
from mailhaul.domain.errors import (
    DestinationMissing,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from mailhaul.services.polling import Poller
from support.harness import Harness


class Refusing:
    """A Delivery that refuses, on commit, any message containing a marker."""

    def __init__(self, inner: MaildirDelivery) -> None:
        self.inner = inner
        self.seen = b""

    def write(self, chunk: bytes) -> None:
        self.seen += chunk
        self.inner.write(chunk)

    def commit(self) -> str | None:
        if b"REFUSE-ME" in self.seen:
            raise PermanentDeliveryError("552 5.3.4 message too big for this mailbox")
        if b"LATER" in self.seen:
            raise TemporaryDeliveryError("451 4.3.0 try again later")
        return self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


class RefusingSession(MaildirSession):
    """A run's Maildir deliveries that refuse marked messages and unknown destinations."""

    def __init__(self, sink: RefusingSink) -> None:
        super().__init__(sink)
        self.missing = sink.missing

    def begin(  # type: ignore[override]
        self, destination: str, receipt: str | None, folder: str | None = None
    ) -> Refusing:
        if destination in self.missing:
            raise DestinationMissing(f"550 5.1.1 <{destination}>: no such user")
        return Refusing(super().begin(destination, receipt, folder))


class RefusingSink(MaildirSink):
    """Maildir delivery that refuses marked messages and unknown destinations."""

    missing: set[str] = set()  # noqa: RUF012

    def open_session(self, account_label: str) -> RefusingSession:
        return RefusingSession(self)


def refusing(harness: Harness) -> RefusingSink:
    sink = RefusingSink(harness.app.settings.maildir_path, harness.app.settings.home)
    harness.poller = Poller(replace(harness.poller.deps, sink=sink))
    return sink


def msg(n: int, text: bytes = b"") -> bytes:
    return b"Message-ID: <%d@x>\r\nSubject: %d\r\n\r\n%s\r\n" % (n, n, text)


def test_permanent_refusal_keeps_the_message_and_skips_it_until_retried(harness: Harness):
    refusing(harness)
    harness.server.add(msg(1))
    harness.server.add(msg(2, b"REFUSE-ME"))
    harness.server.add(msg(3))
    account = harness.add()
    first = harness.poller.poll(account.id)
    assert (first.result, first.fetched, first.skipped) == ("ok", 2, 1)
    assert [m.data for m in harness.server.messages()] == [msg(2, b"REFUSE-ME")]
    log = harness.app.accounts.runs_of(account.id)[0].log
    assert "refused for good" in log
    assert "552 5.3.4" in log
    second = harness.poller.poll(account.id)  # no retry storm
    assert (second.fetched, second.skipped) == (0, 1)
    with harness.app.db.begin() as conn:
        [record] = MessageRecords().refused(conn, account.id)
        assert "552" in record.note
        assert MessageRecords().clear_refused(conn, account.id, record.uid) == 1
    harness.poller.poll(account.id)  # retried: refused again, still on the server
    assert len(harness.server.messages()) == 1
    assert len(harness.bodies()) == 2


def test_temporary_refusal_stops_the_run_and_keeps_everything(harness: Harness):
    refusing(harness)
    harness.server.add(msg(1, b"LATER"))
    harness.server.add(msg(2))
    account = harness.add()
    summary = harness.poller.poll(account.id)
    assert summary.result == "error"
    assert "451" in (summary.error or "")
    assert len(harness.server.messages()) == 2
    assert harness.app.accounts.get(account.id).state == "error"


def test_missing_destination_fetches_and_deletes_nothing(harness: Harness):
    sink = refusing(harness)
    sink.missing = {"owner@example.org"}
    harness.server.add(msg(1))
    account = harness.add()
    summary = harness.poller.poll(account.id)
    assert summary.result == "error"
    assert harness.app.accounts.get(account.id).state == "destination missing"
    assert len(harness.server.messages()) == 1
    assert harness.maildir_files() == []
    sink.missing = set()
    assert harness.poller.poll(account.id).fetched == 1
    assert harness.app.accounts.get(account.id).state == "ok"
