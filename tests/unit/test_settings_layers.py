"""Settings an admin stores in the database: between the environment and mailhaul.toml,
checked by the same code as the file, and only the editable keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhaul.domain.errors import ConfigError
from mailhaul.settings import load_settings, read_layers
from mailhaul.settings_keys import EDITABLE_SETTINGS, InvalidSetting, canonical_setting


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "mailhaul.toml").write_text(
        "[poll]\ninterval = 120\nmax_size = 1000\n"
        '[delivery.domains."file.test"]\nmethod = "smtp"\nsmtp = "relay:25"\n'
        'smtp_username = "relay-user"\n'
    )
    return tmp_path


def test_the_database_is_above_the_file_and_below_the_environment(home: Path):
    stored = {"poll.interval": 600, "poll.max_size": 2000}
    env = {"MAILHAUL_POLL_MAX_SIZE": "3000"}
    settings = load_settings(home, environ=env, stored=stored)
    assert settings.interval == 600  # database over mailhaul.toml
    assert settings.max_size == 3000  # environment over the database
    layers = read_layers(home, environ=env)
    assert layers.source_of("poll.interval", stored) == "database"
    assert layers.source_of("poll.max_size", stored) == "environment"
    assert layers.source_of("poll.per_host_limit", stored) == "default"
    assert layers.source_of("poll.interval") == "mailhaul.toml"
    assert layers.source_of("database.url", {}) == "default"
    flagged = read_layers(home, {"poll.interval": 30}, environ={})
    assert flagged.source_of("poll.interval", stored) == "flag"
    assert flagged.resolve(stored).interval == 30


def test_resolving_again_keeps_the_layers_read_at_start(home: Path):
    settings = load_settings(home, environ={})
    (home / "mailhaul.toml").write_text("[poll]\ninterval = 999\n")
    assert settings.layers is not None
    again = settings.layers.resolve({"poll.max_size": 5})
    assert (again.interval, again.max_size) == (120, 5)  # the file as read at start
    assert again.stored == {"poll.max_size": 5}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("poll.interval", 0, "must be positive"),
        ("poll.interval", 5, "at least 10 seconds"),
        ("poll.interval", "soon", "whole number"),
        ("poll.interval", True, "must be a int"),
        ("poll.max_size", 2**60, "too large"),
        ("poll.per_host_limit", -1, "must be positive"),
        ("runs.keep_days", -1, "0 or more"),
        ("sources.allow_private", "maybe", "true or false"),
        ("sources.allowed_ports", "993,imaps", "must list TCP ports"),
    ],
)
def test_a_stored_value_is_checked_like_the_files(
    home: Path, name: str, value: object, message: str
):
    with pytest.raises(InvalidSetting, match=message) as caught:
        load_settings(home, environ={}, stored={name: value})
    assert caught.value.name == name


def test_a_stored_value_is_coerced_as_an_environment_variable_is():
    assert canonical_setting("poll.interval", " 600 ") == 600
    assert canonical_setting("sources.allow_private", "yes") is True
    assert canonical_setting("sources.allowed_ports", "993") == "993"
    with pytest.raises(InvalidSetting):
        canonical_setting("poll.timeout", 5)


def test_only_the_editable_keys_may_be_stored(home: Path):
    for name in ("poll.workers", "poll.timeout", "database.url", "web.listen", "delivery.mda"):
        assert name not in EDITABLE_SETTINGS
        with pytest.raises(InvalidSetting, match="cannot be changed") as caught:
            load_settings(home, environ={}, stored={name: "1"})
        assert caught.value.name == name


def test_stored_domains_merge_over_the_files_table_key_by_key(home: Path):
    stored = {
        "delivery.domains": {
            "File.Test": {"smtp": "other-relay:2525", "smtp_starttls": "yes"},
            "lmtp.test": {"method": "lmtp", "lmtp": "127.0.0.1:24", "timeout": 30},
        }
    }
    settings = load_settings(home, environ={}, stored=stored)
    in_file = settings.delivery_domains["file.test"]
    assert (in_file.method, in_file.smtp, in_file.smtp_starttls) == (
        "smtp",
        "other-relay:2525",
        True,
    )
    assert in_file.smtp_username == "relay-user"  # the file's, not editable here
    stored_only = settings.delivery_domains["lmtp.test"]
    assert (stored_only.method, stored_only.lmtp, stored_only.timeout) == (
        "lmtp",
        "127.0.0.1:24",
        30.0,
    )


@pytest.mark.parametrize(
    ("table", "name", "message"),
    [
        ({"method": "mda"}, "method", "must be one of maildir, lmtp, smtp"),
        ({"mda": "/bin/sh -c evil"}, "mda", "cannot be set here"),
        ({"smtp_password_file": "/etc/shadow"}, "smtp_password_file", "cannot be set here"),
        ({"smtp_username": "x"}, "smtp_username", "cannot be set here"),
        ({"smtp_ca_file": "/x"}, "smtp_ca_file", "cannot be set here"),
        ({"method": "lmtp"}, "lmtp", "lmtp is empty"),
        ({"method": "maildir", "maildir_path": ""}, "maildir_path", "maildir_path is empty"),
        ({"timeout": "nan"}, "timeout", "finite number"),
        ({"timeout": 0}, "timeout", "must be positive"),
        ({"lmtp": "a\nb"}, "lmtp", "control"),
    ],
)
def test_a_stored_domain_may_not_run_a_command_or_name_files(
    home: Path, table: dict[str, object], name: str, message: str
):
    with pytest.raises(InvalidSetting, match=message) as caught:
        load_settings(home, environ={}, stored={"delivery.domains": {"web.test": table}})
    assert caught.value.name == f'delivery.domains."web.test".{name}'


def test_a_stored_domain_must_be_a_domain_name(home: Path):
    for bad in ("", "no spaces.test", "../etc", "a@b.test", "x" * 300 + ".test"):
        with pytest.raises(InvalidSetting, match="domain name"):
            load_settings(home, environ={}, stored={"delivery.domains": {bad: {"timeout": 1}}})
    settings = load_settings(
        home, environ={}, stored={"delivery.domains": {"Bücher.Example.": {"timeout": 1}}}
    )
    assert "xn--bcher-kva.example" in settings.delivery_domains


def test_a_bad_file_still_fails_as_before(tmp_path: Path):
    (tmp_path / "mailhaul.toml").write_text("[poll]\ninterval = -1\n")
    with pytest.raises(ConfigError, match=r"poll\.interval must be positive"):
        load_settings(tmp_path, environ={})


def test_an_empty_web_listen_variable_switches_the_web_ui_off_other_empties_are_unset(
    home: Path,
):
    (home / "mailhaul.toml").write_text(
        '[web]\nlisten = "127.0.0.1:9999"\n[poll]\ninterval = 120\n'
    )
    assert load_settings(home, environ={}).web_listen == "127.0.0.1:9999"
    env = {"MAILHAUL_WEB_LISTEN": "", "MAILHAUL_POLL_INTERVAL": ""}
    settings = load_settings(home, environ=env)
    assert settings.web_listen == ""
    assert settings.interval == 120  # an empty number variable still counts as unset
    assert read_layers(home, environ=env).source_of("web.listen") == "environment"
