"""Delivery over SMTP to the local MTA or a relay.

``SmtpSink("localhost:25", 60)``; with ``starttls=True`` the server must offer STARTTLS and
its certificate must verify (system CAs or ``ca_file``, TLS 1.2+): never a silent fallback to
clear text. ``username``/``password`` (AUTH PLAIN, else LOGIN) need ``starttls``. The envelope
sender is ``sender`` when given ("" for ``<>``), else the message's ``Return-Path``, else its
``From:`` address, else ``<>``. See ``network`` for where each error can come from and for the
duplicate window.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mailhaul.adapters.sinks.network import NetworkSink
from mailhaul.domain.errors import ConfigError

if TYPE_CHECKING:
    from mailhaul.settings_keys import DeliverySettings


class SmtpSink(NetworkSink):
    """A ``MailSink`` handing each message to an SMTP server (TCP, or a Unix socket path)."""

    default_port = 25

    def __init__(
        self,
        address: str,
        timeout: float,
        starttls: bool = False,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        sender: str | None = None,
    ) -> None:
        super().__init__(
            address,
            timeout,
            sender,
            lmtp=False,
            starttls=starttls,
            ca_file=ca_file,
            username=username,
            password=password,
        )


def sink_from_settings(delivery: DeliverySettings, home: Path) -> SmtpSink:
    """The sink of ``method = "smtp"``: the server ``smtp``, the password read from
    ``smtp_password_file`` now."""
    return SmtpSink(
        delivery.smtp,
        delivery.timeout,
        starttls=delivery.smtp_starttls,
        ca_file=delivery.smtp_ca_file or None,
        username=delivery.smtp_username or None,
        password=_read_secret(delivery.smtp_password_file),
        sender=delivery.envelope_sender,
    )


def _read_secret(path: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read delivery.smtp_password_file {path}: {exc}") from exc
