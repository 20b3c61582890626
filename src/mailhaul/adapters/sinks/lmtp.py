"""Delivery over LMTP (RFC 2033) to Dovecot, Cyrus and the like.

``LmtpSink("/run/dovecot/lmtp", timeout=60)`` or ``LmtpSink("127.0.0.1:24", 60)``. The
envelope sender is ``sender`` when given ("" for ``<>``), else the message's ``Return-Path``,
else its ``From:`` address, else ``<>``. See ``network`` for where each error can come from
and for the duplicate window.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mailhaul.adapters.sinks.network import NetworkSink

if TYPE_CHECKING:
    from mailhaul.settings_keys import DeliverySettings


class LmtpSink(NetworkSink):
    """A ``MailSink`` handing each message to an LMTP server (Unix socket or TCP)."""

    default_port = 24

    def __init__(
        self, address: str, timeout: float, sender: str | None = None, folder_detail: str = ""
    ) -> None:
        super().__init__(address, timeout, sender, lmtp=True)
        self.folder_detail = folder_detail


def sink_from_settings(delivery: DeliverySettings, home: Path) -> LmtpSink:
    """The sink of ``method = "lmtp"``: the server ``lmtp``; a message for a folder goes to
    ``local+Folder@domain`` when ``lmtp_folder_detail`` names the server's delimiter."""
    return LmtpSink(
        delivery.lmtp, delivery.timeout, delivery.envelope_sender, delivery.lmtp_folder_detail
    )
