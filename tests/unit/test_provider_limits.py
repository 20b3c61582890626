"""Provider limits by source host: the settings' tables, the daily budget's window and the
connection cap's share for push."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhaul.domain.limits import (
    DAY,
    DayUsage,
    HostLimits,
    daily_budget,
    limit_reached_words,
    parse_host_table,
    watch_connections,
)
from mailhaul.domain.validation import FieldError
from mailhaul.settings import load_settings
from mailhaul.settings_keys import InvalidSetting

MB = 1 << 20


def test_the_presets_name_gmail_and_leave_other_hosts_unlimited() -> None:
    limits = HostLimits()
    assert limits.daily_bytes_for("imap.gmail.com") == 2500 * MB
    assert limits.daily_bytes_for("POP.Gmail.com.") == 1250 * MB  # case, trailing dot
    assert limits.daily_bytes_for("mail.example.org") is None
    assert limits.connections_for("imap.gmail.com") == 7
    assert limits.connections_for("mail.example.org") == 4  # the "*" entry


def test_a_star_entry_covers_every_other_host() -> None:
    table = parse_host_table("imap.gmail.com=2500M, *=10G", size=True)
    assert table.get("imap.gmail.com") == 2500 * MB
    assert table.get("mail.example.org") == 10 << 30
    assert table.text(size=True) == "imap.gmail.com=2500M, *=10G"


@pytest.mark.parametrize(
    "text",
    ["imap.gmail.com", "imap.gmail.com=", "=15", "bad host=15", "a.org=lots", "a.org=-1"],
)
def test_a_bad_table_entry_is_named(text: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_host_table(text, size=True)
    assert text.split(",")[0].split()[0][:5] in caught.value.message


@pytest.mark.parametrize("raw", ["0", "1001", "x"])
def test_connection_caps_are_whole_numbers_from_one(raw: str) -> None:
    with pytest.raises(FieldError):
        parse_host_table(f"a.org={raw}", size=False)
    assert parse_host_table("a.org=1", size=False).get("a.org") == 1  # positive control


def test_a_bad_setting_names_itself(tmp_path: Path) -> None:
    env = {"MAILHAUL_LIMITS_CONNECTIONS_PER_ACCOUNT": "imap.gmail.com=many"}
    with pytest.raises(InvalidSetting) as caught:
        load_settings(tmp_path, environ=env)
    assert caught.value.name == "limits.connections_per_account"
    env = {"MAILHAUL_LIMITS_DAILY_BYTES_PER_HOST": "*=1G"}
    assert load_settings(tmp_path, environ=env).limits.daily_bytes_for("x.org") == 1 << 30


def test_push_always_leaves_one_connection_for_polling() -> None:
    assert watch_connections(None, 5) == 5
    assert watch_connections(4, 5) == 3
    assert watch_connections(4, 1) == 1
    assert watch_connections(2, 3) == 1
    assert watch_connections(1, 1) == 0


def test_the_budget_counts_the_last_24_hours_only() -> None:
    now = 10 * DAY
    runs = [(now - DAY - 1, 900), (now - 3600, 300), (now - 60, 200)]
    budget = daily_budget(1000, runs, now)
    assert (budget.used, budget.left, budget.reached) == (500, 500, False)
    assert budget.resumes_at is None


def test_a_spent_budget_resumes_when_enough_falls_out_of_the_window() -> None:
    now = 10 * DAY
    runs = [(now - 5000, 600), (now - 3000, 300), (now - 60, 200)]  # 1,100 of 1,000
    budget = daily_budget(1000, runs, now)
    assert budget.reached and budget.left == 0
    # Without the oldest run, 500 are left: under the limit again then.
    assert budget.resumes_at == now - 5000 + DAY
    runs = [(now - 5000, 100), (now - 3000, 900), (now - 60, 200)]  # 1,200
    assert daily_budget(1000, runs, now).resumes_at == now - 3000 + DAY  # two must go


def test_a_run_takes_no_more_than_the_budget_left() -> None:
    now = 10 * DAY
    usage = DayUsage("imap.gmail.com", 1000, ((now - 60, 700),))
    assert usage.run_bytes(None, now) == 300
    assert usage.run_bytes(100, now) == 100
    after = usage.after(now, 400)
    assert after.reached and after.resumes_at == now - 60 + DAY
    words = limit_reached_words(usage, after)
    assert words.startswith("daily download limit for imap.gmail.com reached (1.1 KiB of")
    assert "fetching resumes at" in words and words.endswith(" UTC")
