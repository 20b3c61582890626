"""`mailhaul fetch`'s progress bar on a terminal: messages as a count, bytes as bytes."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mailhaul.cli import fetching, output


def test_the_bar_shows_messages_and_bytes_each_as_what_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(output, "err_console", lambda: console)
    progress = fetching._progress()
    with progress:
        bar = fetching._Bar(progress, 7)
        bar(7, 3, 2000, 5 * 1024 * 1024)
        progress.refresh()
        bar.remove()
    drawn = screen.getvalue()
    assert "account 7" in drawn
    assert "3/2000 messages, 5 MiB" in drawn
    assert "3 bytes" not in drawn and "3.0 kB" not in drawn  # the count is not a size
