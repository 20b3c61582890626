"""Waiting in tests for something a process does in its own time (bounded, never a sleep
in place of a condition)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(ready: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Whether ``ready()`` became true within ``timeout`` seconds (asked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.05)
    return ready()
