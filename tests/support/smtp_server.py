"""A real SMTP (or LMTP) server for tests: aiosmtpd on a loopback port, in a thread.

The handler answers as the test directs (``rcpt_replies`` per recipient, ``data_reply`` after
the message) and keeps every accepted message with its envelope, byte for byte as received
(after dot-unstuffing, before any parsing).
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"


@dataclass
class Received:
    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]
    data: bytes


@dataclass
class Handler:
    """Replies chosen by the test; what arrived."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)  # recipient → reply
    data_reply: str = "250 2.0.0 OK queued"
    mail_reply: str | None = None
    messages: list[Received] = field(default_factory=list)
    hellos: int = 0  # EHLO/LHLO commands seen (one per connection without STARTTLS)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.hellos += 1
        session.host_name = hostname  # (aiosmtpd leaves this to a custom hook)
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address, "250 OK")
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        if self.data_reply.startswith("2"):
            with self.lock:
                self.messages.append(
                    Received(
                        envelope.mail_from,
                        list(envelope.mail_options),
                        list(envelope.rcpt_tos),
                        bytes(envelope.original_content),
                    )
                )
        return self.data_reply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class SmtpTestServer:
    """``with SmtpTestServer(handler, ...) as server:`` → ``server.address`` is ``host:port``."""

    def __init__(
        self,
        handler: Handler,
        *,
        lmtp: bool = False,
        tls_context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.handler = handler
        self.credentials = credentials
        kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        if credentials is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = True
        self.port = _free_port()
        lmtp_mode = lmtp

        class _Controller(Controller):
            def factory(self) -> SMTP:
                cls = LMTP if lmtp_mode else SMTP
                return cls(self.handler, **self.SMTP_kwargs)

        self._controller = _Controller(
            handler, hostname=HOST, port=self.port, decode_data=False, **kwargs
        )

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def __enter__(self) -> SmtpTestServer:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()
