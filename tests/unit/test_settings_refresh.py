"""A running process applies settings an admin changed: a poll in progress keeps the
poller and sink it started with; the next poll delivers through the new sink; the old sink
is closed once nothing can use it. Nothing is lost or delivered twice."""

from __future__ import annotations

import gc
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from mailhaul.domain.access import Principal, Role
from mailhaul.services.polling import Poller
from support.harness import Harness

ADMIN = Principal(user_id=1, login="admin", role=Role.ADMIN)


def files_in(maildir: Path) -> int:
    return len([*(maildir / "new").glob("*"), *(maildir / "cur").glob("*")])


class RecordingSink:
    """A sink that says when it is closed (around the home's Maildir sink)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.closed = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        self.closed.set()


def test_a_poll_in_progress_keeps_its_sink_and_the_next_one_takes_the_new(imap: Harness):
    app = imap.app
    old_sink = RecordingSink(app.sink)
    app.__dict__["sink"] = old_sink
    app.__dict__["poller"] = Poller(replace(app.poller.deps, sink=old_sink))
    account = imap.add()
    imap.server.add(b"Subject: one\r\n\r\nfirst\r\n")
    imap.server.add(b"Subject: two\r\n\r\nsecond\r\n")
    moved = "{home}/moved/{domain}/{local}"

    def change_midway(event: str) -> None:
        if event == "fetch:2" and app.settings.stored == {}:
            app.settings_admin.change(
                ADMIN, {"delivery.domains": {"example.org": {"maildir_path": moved}}}
            )

    imap.server.fail_at = change_midway
    in_progress = app.poller.deps
    summary = app.poller.poll(account.id)
    assert (summary.result, summary.fetched) == ("ok", 2)
    assert app.poller.deps is not in_progress  # the next poll gets new dependencies …
    assert app.sink is not old_sink and app.poller.deps.sink is app.sink  # … the new sink
    old_maildir = old_sink.inner.maildir_for("owner@example.org")
    assert files_in(old_maildir) == 2  # both of the run in progress: through the old sink
    assert not old_sink.closed.is_set()  # something still holds the old dependencies
    del in_progress
    gc.collect()
    assert old_sink.closed.wait(5)  # closed once no poll can use it

    imap.server.fail_at = None
    imap.server.add(b"Subject: three\r\n\r\nthird\r\n")
    assert app.poller.poll(account.id).fetched == 1
    new_maildir = app.settings.home / "moved" / "example.org" / "owner"
    assert files_in(new_maildir) == 1
    assert files_in(old_maildir) == 2  # nothing delivered twice, nothing lost
    assert imap.server.messages() == []
