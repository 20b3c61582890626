"""Every time in every `--json` of the CLI is an ISO 8601 UTC string a script can parse
(``datetime.fromisoformat``), null where there is none; no epoch number is left anywhere."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.filled_home import ERROR, OWNER, PROVIDER, FilledHome

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# A number in here under any other key would be a Unix time that escaped (2001 to 2096).
EPOCH_RANGE = (1e9, 4e9)

READ_COMMANDS = [
    ("account", "list"),
    ("account", "show", "1"),
    ("status",),
    ("status", "--account", "1"),
    ("runs", "1"),
    ("log", "1"),
    ("refused", "1"),
    ("incidents", "--all"),
    ("quarantine", "list"),
    ("user", "list"),
    ("user", "show", OWNER),
    ("user", "key", "list"),
    ("oauth", "provider", "list"),
    ("oauth", "provider", "show", PROVIDER),
    ("settings", "show"),
]


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Iterator[FilledHome]:
    filled = FilledHome(tmp_path / "mh", database_url)
    yield filled
    filled.close()


def times_in(data: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) under a key ending in ``_at``; fails on an epoch number elsewhere."""
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}"
            if key.endswith("_at"):
                yield where, value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                assert not EPOCH_RANGE[0] < value < EPOCH_RANGE[1], f"{where} is {value}"
            else:
                yield from times_in(value, where)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from times_in(item, f"{path}[{index}]")


def parsed(value: str) -> datetime:
    """An ISO time as a script reads it: aware, in UTC."""
    assert ISO_UTC.match(value), value
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    return moment


def test_every_time_in_every_json_is_iso_8601_utc(home: FilledHome):
    seen: dict[str, datetime] = {}
    for command in READ_COMMANDS:
        data = json.loads(home.cli.ok(*command, "--json"))
        for where, value in times_in(data):
            if value is not None:
                seen[f"{' '.join(command)}{where}"] = parsed(value)
    # positive control: the times the home holds are all there, and each is right
    found = {where.rpartition(".")[2] for where in seen}
    assert found >= {
        "last_run_at", "next_poll_at", "started_at", "finished_at", "refused_at",
        "opened_at", "notified_at", "sent_at", "created_at", "updated_at", "generated_at",
        "heartbeat_at",
    }  # fmt: skip
    now = home.now

    def near(where: str, seconds: float) -> None:
        assert abs(seen[where].timestamp() - (now + seconds)) <= 1, where

    near("runs 1[0].started_at", -120)
    near("runs 1[0].finished_at", -110)
    near("log 1.started_at", -120)
    near("account show 1.next_poll_at", 190)
    near("refused 1[0].refused_at", -115)
    near("incidents --all[0].notices[0].sent_at", -90)
    near("quarantine list[0].created_at", -112)
    near("status.summary.workers[0].heartbeat_at", -5)


def test_no_time_is_null_where_one_exists_and_none_where_none_does(home: FilledHome):
    (account,) = json.loads(home.cli.ok("account", "list", "--json"))
    assert account["last_run_at"] is not None
    (key,) = json.loads(home.cli.ok("user", "key", "list", "--json"))
    assert key["last_used_at"] is None  # never used: null, not 1970
    (incident,) = json.loads(home.cli.ok("incidents", "--all", "--json"))
    assert incident["closed_at"] is None and incident["open"] is True


def test_log_json_is_the_run_with_its_log(home: FilledHome):
    shown = json.loads(home.cli.ok("log", "1", "--json"))
    assert shown["id"] == 1 and shown["result"] == "error"
    assert shown["log"] == home.cli.ok("log", "1")
    assert ERROR in shown["log"]


def test_durations_are_seconds_and_say_so(home: FilledHome):
    (run,) = json.loads(home.cli.ok("runs", "1", "--json"))
    assert run["duration_seconds"] == pytest.approx(10, abs=0.01)
    assert "duration" not in run
    status = json.loads(home.cli.ok("status", "--json"))
    assert status["accounts"][0]["last_run"]["duration_seconds"] == pytest.approx(10, abs=0.01)
    (worker,) = status["summary"]["workers"]
    assert 0 <= worker["heartbeat_age_seconds"] < 60
    assert isinstance(status["summary"]["queue_lag_seconds"], int | float)
    assert datetime.now(UTC) >= parsed(status["generated_at"])
