"""Opening a push watcher's connection: signed in exactly as a poll signs in (``Wire``:
implicit TLS or STARTTLS with the certificate verified, ``SignIn``: LOGIN, AUTHENTICATE
PLAIN, OAuth2), the folder opened read-only (``EXAMINE``: its UIDVALIDITY and UIDNEXT kept
as the link's ``mark``), ``IDLE`` started; then the socket is handed to the caller's event
loop as an ``IdleLink``.

This part blocks (bounded by ``poll.timeout`` per read, as a poll's commands are), so the
watcher runs it on a small pool of connecting threads, never on its event loop. A server
whose capabilities lack ``IDLE`` is logged out of and reported as ``UnsupportedByServer``.

Given a ``NotifyPlan`` and a server that offers NOTIFY (RFC 5465), the connection also asks
to hear of new mail in the plan's other folders (``NOTIFY SET``) before it idles; the link's
``notify`` says whether it does (a server without NOTIFY, or one that refuses the command,
gives a plain IDLE on ``folder``: the caller then watches the other folders its own way).

The socket gets TCP keepalive (``keep_alive``): a peer gone without a word (a host down, a
NAT mapping dropped) ends the link within about two minutes, long before the next DONE
round trip (``push.keepalive``) would find it, and the probes keep NAT mappings open.
"""

from __future__ import annotations

import contextlib
import socket

from mailhaul.adapters.sources.imap.commands import quote
from mailhaul.adapters.sources.imap.idle_link import IdleLink
from mailhaul.adapters.sources.imap.notify import NotifyPlan
from mailhaul.adapters.sources.imap.parser import Response, Status
from mailhaul.adapters.sources.imap.session import ImapConnection
from mailhaul.adapters.sources.imap.signin import SignIn
from mailhaul.adapters.sources.wire import Wire
from mailhaul.domain.errors import MailhaulError, TransientSourceError, UnsupportedByServer
from mailhaul.domain.imap_utf7 import encode_mailbox
from mailhaul.domain.options import Credentials, SourceEndpoint
from mailhaul.domain.ports import LogFn
from mailhaul.domain.redaction import Redactor

KEEPALIVE = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4))
"""The kernel's probes on a quiet watch connection: the first after 60 s of silence, then
every 15 s; four unanswered end it (about two minutes)."""


def keep_alive(sock: socket.socket) -> None:
    """TCP keepalive with ``KEEPALIVE``'s timing where the platform lets us set it (a
    socket that cannot take it fails at its first read instead)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in KEEPALIVE:
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def open_idle(
    endpoint: SourceEndpoint,
    credentials: Credentials,
    log: LogFn,
    folder: str = "INBOX",
    notify: NotifyPlan | None = None,
) -> IdleLink:
    """A connection idling on ``folder`` (and told of ``notify``'s folders where the server
    has NOTIFY); the errors a poll's sign-in raises, and UnsupportedByServer without IDLE."""
    wire = Wire(endpoint)
    redact = Redactor.for_credentials(credentials, (endpoint.host, endpoint.port))
    conn = ImapConnection(wire, log, redact)
    try:
        wire.open()
        caps = SignIn(conn, credentials, lambda _extension, _status: None).run()
        if "IDLE" not in caps:
            _logout(conn)
            raise UnsupportedByServer(f"{endpoint.host} does not offer IDLE")
        name = quote(encode_mailbox(folder).encode("ascii"))
        mark: dict[str, int] = {}

        def on_examine(response: Response) -> None:
            if isinstance(response, Status) and response.code in ("UIDVALIDITY", "UIDNEXT"):
                value = response.code_args[0] if response.code_args else None
                if isinstance(value, int):
                    mark[response.code] = value

        conn.check(conn.command(b"EXAMINE " + name, on_examine), f"EXAMINE {folder!r}")
        exists = conn.numbers.exists or 0
        notifying = None
        if notify is not None and "NOTIFY" in caps and conn.command(notify.command()).kind == "OK":
            notifying = notify
        (tag,) = conn.send_commands([b"IDLE"])
        reply = conn.wait_continuation(tag)
        if isinstance(reply, Status):
            raise TransientSourceError(f"the server refused IDLE: {redact(reply.text)}")
        sock, rest = wire.detach()
        keep_alive(sock)
    except MailhaulError:
        wire.abort()
        raise
    link = IdleLink(sock, rest, exists, tag, redact)
    link.mark = (mark.get("UIDVALIDITY"), mark.get("UIDNEXT"))
    link.notify = notifying
    return link


def _logout(conn: ImapConnection) -> None:
    with contextlib.suppress(MailhaulError):
        conn.logging_out = True
        conn.command(b"LOGOUT")
    conn.wire.abort()
