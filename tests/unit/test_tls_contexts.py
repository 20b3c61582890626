"""TLS client contexts are built once per CA setting (reading the system CAs costs ~20 ms
of CPU, most of a "nothing new" poll) and rebuilt when the CA file changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhaul.adapters.tls import shared_context
from mailhaul.domain.errors import ConfigError
from support.dovecot import write_certificates


def test_a_context_is_shared_until_its_ca_file_changes(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    write_certificates(ca, tmp_path / "cert.pem", tmp_path / "key.pem")
    first = shared_context(str(ca))
    assert shared_context(str(ca)) is first
    assert shared_context(str(ca), verify=False) is not first
    ca.write_bytes(ca.read_bytes() + b"\n")  # e.g. the CA bundle was replaced
    assert shared_context(str(ca)) is not first


def test_an_unreadable_ca_file_is_still_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read CA file"):
        shared_context(str(tmp_path / "x"))
