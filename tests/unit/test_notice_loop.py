"""The service's notices thread: it keeps sending, and says a lasting problem once."""

from __future__ import annotations

import logging
import threading

import pytest

from mailhaul.domain.errors import ConfigError
from mailhaul.services.notices import SERVICE_SETTLE, NoticeLoop


class FlakySender:
    def __init__(self) -> None:
        self.calls: list[float] = []
        self.done = threading.Event()

    def send_due(self, now: float | None = None, settle: float = 0.0) -> int:
        self.calls.append(settle)
        if len(self.calls) >= 6:
            self.done.set()
        if len(self.calls) <= 4:
            raise ConfigError("notify.webhook_secret_file /nowhere: No such file")
        return 0


def test_it_keeps_sending_and_says_a_lasting_problem_once(caplog: pytest.LogCaptureFixture):
    sender = FlakySender()
    loop = NoticeLoop(lambda: sender, every=0.01)  # type: ignore[arg-type, return-value]
    with caplog.at_level(logging.WARNING, logger="mailhaul.services.notices"):
        loop.start()
        assert sender.done.wait(10)
        loop.stop()
    assert set(sender.calls) == {SERVICE_SETTLE}  # new notices settle first (digests)
    warnings = [r.getMessage() for r in caplog.records if "notices:" in r.getMessage()]
    assert warnings == ["notices: notify.webhook_secret_file /nowhere: No such file"]
