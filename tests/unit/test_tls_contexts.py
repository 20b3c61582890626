"""TLS client contexts are built once per CA setting (reading the system CAs costs ~20 ms
of CPU, most of a "nothing new" poll) and rebuilt when the CA file changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mailhaul.adapters.sources.wire import shared_context
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.options import Protocol, SourceEndpoint
from support.dovecot import write_certificates


def test_a_context_is_shared_until_its_ca_file_changes(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    write_certificates(ca, tmp_path / "cert.pem", tmp_path / "key.pem")
    endpoint = SourceEndpoint(Protocol.IMAP, "mail.example.net", 993, ca_file=str(ca))
    first = shared_context(endpoint)
    assert shared_context(dataclasses.replace(endpoint, port=995)) is first
    assert shared_context(dataclasses.replace(endpoint, verify_cert=False)) is not first
    ca.write_bytes(ca.read_bytes() + b"\n")  # e.g. the CA bundle was replaced
    assert shared_context(endpoint) is not first


def test_an_unreadable_ca_file_is_still_a_config_error(tmp_path: Path):
    endpoint = SourceEndpoint(Protocol.POP3, "mail.example.net", 995, ca_file=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="cannot read CA file"):
        shared_context(endpoint)
