"""A run's log: the lines a user reads as "last run log", with secrets scrubbed."""

from __future__ import annotations

import logging
import time

from mailhaul.domain.redaction import Redactor

logger = logging.getLogger("mailhaul.run")

MAX_LINES = 2000


class RunLog:
    """Collects time-stamped lines of one run; the run's secret is masked once known."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self._lines: list[str] = []
        self._redact = Redactor()
        self._dropped = 0

    def hide(self, redact: Redactor) -> None:
        """From now on, mask what ``redact`` masks in every line."""
        self._redact = redact

    def scrub(self, text: str) -> str:
        """``text`` with the run's secret masked."""
        return self._redact(text)

    def __call__(self, line: str) -> None:
        """Add a line."""
        line = self._redact(line)
        logger.info("account %s: %s", self.account_id, line)
        if len(self._lines) >= MAX_LINES:
            self._dropped += 1
            return
        self._lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}")

    def text(self) -> str:
        """The whole log."""
        extra = [f"... {self._dropped} more lines not kept"] if self._dropped else []
        return "\n".join(self._lines + extra) + "\n"
