"""Delivery over SMTP to the local MTA or a relay.

``SmtpSink("localhost:25", 60)``; with ``starttls=True`` the server must offer STARTTLS and
its certificate must verify (system CAs or ``ca_file``, TLS 1.2+): never a silent fallback to
clear text. ``username``/``password`` (AUTH PLAIN, else LOGIN) need ``starttls``. The envelope
sender is ``sender`` when given ("" for ``<>``), else the message's ``Return-Path``, else its
``From:`` address, else ``<>``. See ``network`` for where each error can come from and for the
duplicate window.
"""

from __future__ import annotations

from mailhaul.adapters.sinks.network import NetworkSink


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
