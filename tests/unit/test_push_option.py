"""The per-account `push` option (IMAP IDLE): its default from push.enabled, refused on POP3,
the web form's box, fetchmail's `idle` keyword, and the settings that bound the watcher."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from starlette.datastructures import FormData

from mailhaul.domain.access import Principal
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from mailhaul.domain.validation import FieldError, validated_spec
from mailhaul.importers.fetchmailrc import parse_fetchmailrc
from mailhaul.settings import load_settings
from mailhaul.settings_keys import InvalidSetting
from mailhaul.web.ui.account_values import spec_of, values_of_form, values_of_spec

IMAP = AccountSpec(
    owner="owner@example.org",
    protocol=Protocol.IMAP,
    host="imap.example.net",
    port=993,
    security=Security.SSL,
    username="user",
)
POP3 = replace(IMAP, protocol=Protocol.POP3, port=995)


def test_an_account_that_does_not_say_follows_the_setting_and_pop3_never_pushes():
    assert IMAP.push is None
    assert IMAP.pushes(True) and not IMAP.pushes(False)
    assert replace(IMAP, push=False).pushes(True) is False
    assert replace(IMAP, push=True).pushes(False) is True
    assert not POP3.pushes(True)


def test_push_on_a_pop3_account_is_a_field_error():
    with pytest.raises(FieldError) as refused:
        validated_spec(replace(POP3, push=True))
    assert refused.value.field == "push" and "IMAP" in refused.value.message
    # positive controls: POP3 with push off or unsaid, IMAP with push on
    for spec in (replace(POP3, push=False), POP3, replace(IMAP, push=True)):
        validated_spec(spec)


def _form(tmp_path: Path, push_default: bool, **fields: str) -> AccountSpec:
    settings = load_settings(tmp_path, {"push.enabled": push_default}, environ={})
    base = {
        "owner": "owner@example.org",
        "protocol": "imap",
        "security": "ssl",
        "host": "imap.example.net",
        "username": "user",
    }
    values = values_of_form(FormData({**base, **fields}))
    return spec_of(values, Principal.system(), settings, None)


def test_the_form_box_stores_a_choice_only_when_it_differs_from_the_setting(tmp_path: Path):
    assert _form(tmp_path, True, push="on").push is None  # as the setting: follows it
    assert _form(tmp_path, True).push is False  # box cleared: off for this account
    assert _form(tmp_path, False, push="on").push is True
    assert _form(tmp_path, False).push is None
    # POP3 has no IDLE: a ticked box is not an error there, and nothing is stored
    assert _form(tmp_path, True, protocol="pop3", push="on").push is None
    assert values_of_spec(replace(IMAP, push=False)).push is False


def test_fetchmail_idle_turns_push_on_for_imap_and_is_noted_for_pop3():
    rc = (
        "poll imap.example.net proto imap user alice pass secret1 idle\n"
        "poll imap2.example.net proto imap user bob pass secret2\n"
        "poll pop.example.net proto pop3 user carol pass secret3 idle\n"
    )
    alice, bob, carol = parse_fetchmailrc(rc, "rc").accounts
    assert alice.push is True
    assert bob.push is None  # the service's default
    assert carol.push is None
    assert any("`idle` on POP3" in note for note in carol.notes)


def test_push_settings_are_bounded(tmp_path: Path):
    settings = load_settings(tmp_path, None, environ={})
    assert (settings.push_enabled, settings.push_keepalive) == (True, 300)
    with pytest.raises(InvalidSetting, match="29 min"):
        load_settings(tmp_path, {"push.keepalive": 1800}, environ={})
    with pytest.raises(InvalidSetting, match="connects_per_second"):
        load_settings(tmp_path, {"push.connects_per_second": 0}, environ={})
    off = load_settings(tmp_path, None, environ={"MAILHAUL_PUSH_ENABLED": "false"})
    assert off.push_enabled is False


def test_push_folders_must_be_polled_folders_of_an_imap_account():
    lists = replace(IMAP.options, folders=("INBOX", "Lists"), push_folders=("INBOX", "Lists"))
    validated_spec(replace(IMAP, options=lists))  # positive control
    for bad, said in (
        (replace(lists, push_folders=("Work",)), "not among the folders polled: Work"),
        (replace(lists, push_folders=("Lists", "Lists")), "named twice"),
    ):
        with pytest.raises(FieldError) as refused:
            validated_spec(replace(IMAP, options=bad))
        assert refused.value.field == "push_folders" and said in refused.value.message
    with pytest.raises(FieldError) as refused:
        validated_spec(replace(POP3, options=replace(IMAP.options, push_folders=("INBOX",))))
    assert refused.value.field == "push_folders"


def test_the_form_reads_push_folders_by_line_or_comma_and_shows_them_back(tmp_path: Path):
    spec = _form(tmp_path, True, folders="INBOX\nLists\nWork", push_folders="INBOX, Lists\nWork")
    assert spec.options.push_folders == ("INBOX", "Lists", "Work")
    assert values_of_spec(spec).folder_rules.push_folders == "INBOX\nLists\nWork"
    assert _form(tmp_path, True).options.push_folders == ()
