"""How the CLI shows things: times in JSON, values in tables."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from mailhaul.cli.output import PIPED_WIDTH, iso_time, json_ready, table


def piped(rendered: object) -> str:
    out = io.StringIO()
    Console(file=out, width=PIPED_WIDTH, soft_wrap=True, highlight=False).print(rendered)
    return out.getvalue()


def test_a_time_becomes_iso_8601_utc_a_script_reads_back():
    moment = 1_796_370_587.9  # 2026-12-04T07:49:47.9Z
    text = iso_time(moment)
    assert text == "2026-12-04T07:49:47Z"
    assert datetime.fromisoformat(text) == datetime(2026, 12, 4, 7, 49, 47, tzinfo=UTC)
    assert iso_time(None) is None


def test_every_time_at_any_depth_is_converted_and_nothing_else():
    data = {
        "id": 1_796_370_587,  # not a time: its key does not say so
        "started_at": 1_796_370_587.0,
        "finished_at": None,
        "open_at": True,  # a flag, whatever its name
        "runs": [{"created_at": 0, "duration_seconds": 2.5}],
        "note_at": "already text",
    }
    assert json_ready(data) == {
        "id": 1_796_370_587,
        "started_at": "2026-12-04T07:49:47Z",
        "finished_at": None,
        "open_at": True,
        "runs": [{"created_at": "1970-01-01T00:00:00Z", "duration_seconds": 2.5}],
        "note_at": "already text",
    }


def test_a_value_with_brackets_or_a_line_break_is_printed_as_it_is():
    subject = "[imap] Re: [bold]offer[/bold] [/] 100% [x]"
    out = piped(table(("id", "subject"), [("1", subject), ("2", "two\nlines")]))
    assert subject in out
    assert "two lines" in out
    assert out.splitlines()[0].split() == ["ID", "SUBJECT"]
