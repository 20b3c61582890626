"""What the crash tests share: a corpus of distinct messages, and a look into a Maildir."""

from __future__ import annotations

import os
from pathlib import Path


def corpus(count: int) -> list[bytes]:
    return [
        b"Message-ID: <crash%d@example.net>\nSubject: crash test %d\n\n%s\n"
        % (n, n, b"line of body text\n" * (20 + n % 50))
        for n in range(count)
    ]


def count_new(maildir: Path) -> int:
    try:
        return len(os.listdir(maildir / "new"))
    except FileNotFoundError:
        return 0
