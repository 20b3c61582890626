"""A check the server cannot make is refused where it is chosen (account add/edit, the
new-account default), not found out by runs that wait for a scanner that does not exist."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mailhaul.domain.filtering import FilterOptions, SpamAction, VirusAction
from mailhaul.domain.validation import FieldError
from mailhaul.settings import load_settings
from mailhaul.settings_keys import InvalidSetting
from support.harness import make_harness


def test_a_check_without_its_scanner_is_refused_when_turned_on(tmp_path: Path):
    harness = make_harness(tmp_path, pop3=True)
    plain = harness.add()
    spec = plain.spec
    with pytest.raises(FieldError, match="no spam scanner") as refused:
        harness.app.accounts.edit(plain.id, replace(spec, filters=FilterOptions(SpamAction.TAG)))
    assert refused.value.field == "antispam"
    virus = FilterOptions(antivirus=VirusAction.QUARANTINE)
    with pytest.raises(FieldError, match="no virus scanner"):
        harness.app.accounts.add(replace(spec, username="other", filters=virus), "pw-123456")
    # positive control: once the admin names the scanners, the same choices are taken
    harness.app.accounts.scanners = lambda: (True, True)
    both = FilterOptions(SpamAction.JUNK, VirusAction.QUARANTINE)
    edited = harness.app.accounts.edit(plain.id, replace(spec, filters=both))
    assert edited.spec.filters == both
    # and a check already on stays editable when its scanner goes away (runs say why)
    harness.app.accounts.scanners = lambda: (False, False)
    renamed = harness.app.accounts.edit(plain.id, replace(edited.spec, interval=900))
    assert renamed.spec.filters == both


def test_new_accounts_default_needs_the_scanner(tmp_path: Path):
    with pytest.raises(InvalidSetting, match=r"set filter\.rspamd or filter\.spamd first"):
        load_settings(tmp_path, {"filter.antispam": "tag"}, environ={})
    with pytest.raises(InvalidSetting, match=r"set filter\.clamd first"):
        load_settings(tmp_path, {"filter.antivirus": "quarantine"}, environ={})
    settings = load_settings(
        tmp_path, {"filter.antispam": "junk", "filter.spamd": "127.0.0.1:783"}, environ={}
    )
    assert settings.filters.antispam == "junk"


def test_the_filter_size_limit_stays_under_the_scanners_own():
    with pytest.raises(InvalidSetting, match="at most 52428800"):
        load_settings(Path("/nonexistent"), {"filter.max_size": 60 * 1024 * 1024}, environ={})
