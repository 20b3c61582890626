"""A run's log: the lines a user reads as "last run log", with secrets scrubbed."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("mailhaul.run")

MAX_LINES = 2000


class RunLog:
    """Collects time-stamped lines of one run; any registered secret is masked."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self._lines: list[str] = []
        self._secrets: list[str] = []
        self._dropped = 0

    def add_secret(self, secret: str) -> None:
        """Never let ``secret`` appear in a line."""
        if secret:
            self._secrets.append(secret)

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def __call__(self, line: str) -> None:
        """Add a line."""
        line = self.scrub(line)
        logger.info("account %s: %s", self.account_id, line)
        if len(self._lines) >= MAX_LINES:
            self._dropped += 1
            return
        self._lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}")

    def text(self) -> str:
        """The whole log."""
        extra = [f"... {self._dropped} more lines not kept"] if self._dropped else []
        return "\n".join(self._lines + extra) + "\n"
