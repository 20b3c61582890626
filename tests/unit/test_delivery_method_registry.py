"""The delivery-method registry (`mailhaul.delivery_methods`) is the one list of methods: the
settings check, `bootstrap.build_sink`, the CLI, the web settings page and the API read it."""

from __future__ import annotations

import importlib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from mailhaul.adapters.sinks.lmtp import LmtpSink
from mailhaul.adapters.sinks.maildir import MaildirSink
from mailhaul.adapters.sinks.mda import MdaSink
from mailhaul.adapters.sinks.routing import RoutingSink
from mailhaul.adapters.sinks.smtp import SmtpSink
from mailhaul.bootstrap import build_sink
from mailhaul.delivery_methods import DELIVERY_METHODS, EDITABLE_METHODS
from mailhaul.domain.errors import ConfigError
from mailhaul.settings import load_settings
from mailhaul.settings_keys import DELIVERY_KEYS, DeliverySettings, InvalidSetting

FILLED = DeliverySettings(
    maildir_path="{home}/{local}",
    lmtp="127.0.0.1:24",
    smtp="127.0.0.1:25",
    mda="/usr/bin/true {address}",
)
SINK_TYPES = {"maildir": MaildirSink, "lmtp": LmtpSink, "smtp": SmtpSink, "mda": MdaSink}


def test_every_method_names_settings_keys_that_exist():
    keys = {item.name for item in fields(DeliverySettings)}
    assert set(DELIVERY_KEYS) == keys
    for method in DELIVERY_METHODS.values():
        assert set(method.required) <= keys, method.name
        assert method.target_key in keys, method.name


@pytest.mark.parametrize("name", list(DELIVERY_METHODS))
def test_every_sink_module_builds_its_sink_from_settings(name: str):
    module = importlib.import_module(DELIVERY_METHODS[name].sink_module)
    assert callable(module.sink_from_settings)


@pytest.mark.parametrize(("name", "sink_type"), list(SINK_TYPES.items()))
def test_build_sink_builds_each_methods_sink(name: str, sink_type: type, tmp_path: Path):
    settings = replace(load_settings(tmp_path, environ={}), delivery=replace(FILLED, method=name))
    sink = build_sink(settings)
    assert type(sink) is sink_type
    assert type(sink).__module__ == DELIVERY_METHODS[name].sink_module


def test_per_domain_methods_are_routed(tmp_path: Path):
    settings = replace(
        load_settings(tmp_path, environ={}),
        delivery_domains={"example.org": replace(FILLED, method="lmtp")},
    )
    assert isinstance(build_sink(settings), RoutingSink)


@pytest.mark.parametrize("name", list(DELIVERY_METHODS))
def test_a_method_without_its_required_setting_is_refused(name: str):
    for key in DELIVERY_METHODS[name].required:
        changes: dict[str, Any] = {"method": name, key: ""}
        empty = replace(FILLED, **changes)
        with pytest.raises(InvalidSetting) as caught:
            empty.check("delivery")
        assert caught.value.name == f"delivery.{key}"
        assert str(caught.value) == f"delivery.method is {name!r} but delivery.{key} is empty"


def test_an_unknown_method_is_refused_naming_the_known_ones():
    with pytest.raises(InvalidSetting, match=f"must be one of {', '.join(DELIVERY_METHODS)}$"):
        replace(FILLED, method="pigeon").check("delivery")


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("maildir", "{home}/{local}"),
        ("lmtp", "127.0.0.1:24"),
        ("smtp", "127.0.0.1:25"),
        ("mda", "/usr/bin/true {address}"),
    ],
)
def test_the_target_is_the_value_of_the_methods_target_key(name: str, target: str):
    assert replace(FILLED, method=name).target == target


def test_the_web_may_choose_maildir_lmtp_and_smtp_but_not_the_mda():
    assert EDITABLE_METHODS[:3] == ("maildir", "lmtp", "smtp")
    assert "mda" not in EDITABLE_METHODS


def test_the_envelope_sender_setting():
    assert DeliverySettings().envelope_sender is None  # from the message
    assert DeliverySettings(sender="<>").envelope_sender == ""  # the null sender
    assert DeliverySettings(sender="a@b.test").envelope_sender == "a@b.test"


def test_an_unreadable_smtp_password_file_is_a_config_error(tmp_path: Path):
    delivery = replace(FILLED, method="smtp", smtp_password_file=str(tmp_path / "missing"))
    settings = replace(load_settings(tmp_path, environ={}), delivery=delivery)
    with pytest.raises(ConfigError, match=r"cannot read delivery\.smtp_password_file"):
        build_sink(settings)
