"""Password encryption at rest, and settings precedence."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailhaul.adapters.secrets import SecretBox
from mailhaul.domain.errors import ConfigError
from mailhaul.settings import load_settings


def test_password_round_trips_and_is_bound_to_its_account(tmp_path: Path):
    box = SecretBox.create(tmp_path / "keys")
    token = box.encrypt("hunter2", 7)
    assert "hunter2" not in token
    assert box.decrypt(token, 7) == "hunter2"
    with pytest.raises(ConfigError, match="fails its check"):
        box.decrypt(token, 8)  # copied to another row


def test_key_file_is_private_and_tampering_is_detected(tmp_path: Path):
    box = SecretBox.create(tmp_path / "keys")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o600
    token = box.encrypt("pw", 1)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(ConfigError):
        box.decrypt(tampered, 1)


def test_rotation_keeps_old_ciphertexts_readable_until_retired(tmp_path: Path):
    box = SecretBox.create(tmp_path / "keys")
    old = box.encrypt("pw", 1)
    new_id = box.add_key()
    assert box.current_key_id == new_id
    assert SecretBox(tmp_path / "keys").decrypt(old, 1) == "pw"
    fresh = box.encrypt("pw", 1)
    assert box.key_id_of(fresh) == new_id
    box.drop_keys_except_current()
    with pytest.raises(ConfigError, match="not in"):
        SecretBox(tmp_path / "keys").decrypt(old, 1)
    assert SecretBox(tmp_path / "keys").decrypt(fresh, 1) == "pw"


def test_missing_key_file_says_to_run_init(tmp_path: Path):
    with pytest.raises(ConfigError, match="mailhaul init"):
        SecretBox(tmp_path / "keys")


def test_settings_precedence_flag_over_env_over_file_over_default(tmp_path: Path):
    (tmp_path / "mailhaul.toml").write_text("[poll]\ninterval = 600\nworkers = 2\n")
    env = {"MAILHAUL_POLL_INTERVAL": "900"}
    assert load_settings(tmp_path, environ={}).interval == 600
    assert load_settings(tmp_path, environ=env).interval == 900
    assert load_settings(tmp_path, {"poll.interval": 120}, environ=env).interval == 120
    assert load_settings(tmp_path, environ={}).timeout == 60.0
    assert load_settings(tmp_path, environ={}).database_url == f"sqlite:///{tmp_path}/mailhaul.db"


def test_bad_settings_give_a_clear_error(tmp_path: Path):
    (tmp_path / "mailhaul.toml").write_text("[poll]\ninterval = 'soon'\n")
    with pytest.raises(ConfigError, match=r"poll\.interval"):
        load_settings(tmp_path, environ={})
    (tmp_path / "mailhaul.toml").write_text("[poll\n")
    with pytest.raises(ConfigError, match=r"mailhaul\.toml"):
        load_settings(tmp_path, environ={})
    (tmp_path / "mailhaul.toml").write_text("[pol]\ninterval = 5\n")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) pol\.interval"):
        load_settings(tmp_path, environ={})
    with pytest.raises(ConfigError, match="whole number"):
        load_settings(tmp_path / "x", environ={"MAILHAUL_POLL_WORKERS": "many"})


def test_delivery_method_with_per_domain_overrides(tmp_path: Path):
    (tmp_path / "mailhaul.toml").write_text(
        '[delivery]\nmethod = "lmtp"\nlmtp = "127.0.0.1:24"\n'
        '[delivery.domains."Example.ORG"]\nmethod = "mda"\nmda = "deliver -d {address}"\n'
        '[delivery.domains."maildir.test"]\nmethod = "maildir"\n'
    )
    settings = load_settings(tmp_path, environ={"MAILHAUL_DELIVERY_TIMEOUT": "30"})
    assert (settings.delivery.method, settings.delivery.lmtp) == ("lmtp", "127.0.0.1:24")
    override = settings.delivery_domains["example.org"]
    assert (override.method, override.mda, override.timeout) == ("mda", "deliver -d {address}", 30)
    assert override.lmtp == "127.0.0.1:24"  # inherited from [delivery]
    assert settings.delivery_domains["maildir.test"].method == "maildir"


def test_delivery_method_without_its_address_is_refused(tmp_path: Path):
    (tmp_path / "mailhaul.toml").write_text('[delivery]\nmethod = "smtp"\n')
    with pytest.raises(ConfigError, match=r"delivery\.smtp is empty"):
        load_settings(tmp_path, environ={})
    (tmp_path / "mailhaul.toml").write_text('[delivery]\nmethod = "pigeon"\n')
    with pytest.raises(ConfigError, match="must be one of"):
        load_settings(tmp_path, environ={})
    (tmp_path / "mailhaul.toml").write_text('[delivery.domains."x.test"]\nlmpt = "a:1"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(tmp_path, environ={})


def test_source_policy_settings_default_to_public_hosts_and_mail_ports(tmp_path: Path):
    settings = load_settings(tmp_path, environ={})
    assert not settings.sources_allow_private
    assert settings.sources_allowed_ports == {110, 143, 993, 995}
    assert settings.web_cookie_secure
    env = {"MAILHAUL_SOURCES_ALLOWED_PORTS": "993, 10993", "MAILHAUL_SOURCES_ALLOW_PRIVATE": "yes"}
    settings = load_settings(tmp_path, environ=env)
    assert settings.sources_allowed_ports == {993, 10993}
    assert settings.sources_allow_private
    with pytest.raises(ConfigError, match=r"sources.allowed_ports must list TCP ports"):
        load_settings(tmp_path, environ={"MAILHAUL_SOURCES_ALLOWED_PORTS": "993,imaps"})
