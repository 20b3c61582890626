"""A small SMTP/LMTP client of our own on sockets, streaming ``DATA``.

Why not ``smtplib``: ``LMTP.sendmail`` reads one reply after ``DATA`` however many recipients
were accepted (the connection falls out of step), and ``sendmail`` wants the whole message in
memory. This client sends ``DATA`` chunk by chunk (``DataEncoder``: dot-stuffing, CRLF) and
reads one reply per accepted recipient over LMTP (RFC 2033).

Every failure of the connection itself (refused, reset, timeout, a reply that is not SMTP, TLS
that cannot be had) is a ``TemporaryDeliveryError``: the message stays on the source. How a
refusal in a reply is classified is up to the caller (``classify``).

``timeout`` bounds each whole reply, not one read: a server that drips a reply a byte at a
time, or sends continuation lines for ever, is given up on after ``timeout`` seconds.
``interrupt()`` (from any thread) shuts the socket down and wakes a blocked read or write.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from base64 import b64encode
from dataclasses import dataclass

from mailhaul.adapters.sinks.transforms import DataEncoder
from mailhaul.adapters.tls import shared_context
from mailhaul.domain.errors import ConfigError, TemporaryDeliveryError

MAX_LINE = 8192  # RFC 5321 allows 512 per reply line; be lenient
MAX_REPLY_LINES = 200
_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -]|$)(.*)")
_ENHANCED = re.compile(r"([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:\s|$)")


@dataclass(frozen=True)
class Reply:
    """One (possibly multi-line) reply: its code and the text of each line."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " / ".join(line for line in self.lines if line)

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code (``5.1.1``) the text starts with, if any."""
        found = _ENHANCED.match(self.lines[0]) if self.lines else None
        return found.group(1) if found else None

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


@dataclass(frozen=True)
class Address:
    """Where the server is: a Unix socket path, or a TCP host and port."""

    path: str | None = None
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return self.path or f"{self.host}:{self.port}"


def parse_address(address: str, default_port: int) -> Address:
    """``/path/to/socket``, ``host``, ``host:port`` or ``[v6]:port``."""
    address = address.strip()
    if address.startswith("/"):
        return Address(path=address)
    host, port = address, default_port
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ConfigError(f"delivery address {address!r}: unclosed '['")
        host, rest = address[1:end], address[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"delivery address {address!r}: expected ':port' after ']'")
            port = _port(address, rest[1:])
    elif address.count(":") == 1:
        host, text = address.split(":")
        port = _port(address, text)
    if not host:
        raise ConfigError(f"delivery address {address!r}: no host")
    return Address(host=host, port=port)


def _port(address: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"delivery address {address!r}: {text!r} is not a port number")
    return int(text)


class SmtpClient:
    """One connection to an SMTP or LMTP server; not thread-safe (one per thread)."""

    def __init__(
        self,
        address: Address,
        timeout: float,
        *,
        lmtp: bool,
        starttls: bool = False,
        ca_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        helo_name: str | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.lmtp = lmtp
        self.starttls = starttls
        self.ca_file = ca_file
        self.username = username
        self.password = password
        self.helo_name = helo_name or socket.getfqdn() or "localhost"
        self.extensions: dict[str, str] = {}
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._encoder: DataEncoder | None = None
        self._accepted = 0
        self.in_transaction = False  # MAIL sent, the transaction not finished
        self._reply_deadline: float | None = None  # when the reply being read is overdue
        self._reply_bytes = 0  # bytes of it received so far
        self.interrupted = False

    @property
    def name(self) -> str:
        return "LMTP" if self.lmtp else "SMTP"

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def _fail(self, what: str, exc: BaseException | None = None) -> TemporaryDeliveryError:
        """Drop the connection and build the error that says why."""
        self.close()
        reason = f": {exc}" if exc is not None and str(exc) else ""
        if isinstance(exc, TimeoutError):
            reason = f": no answer within {self.timeout:g} s"
        if self.interrupted:
            what, reason = "the delivery was cut off because the service is stopping", ""
        return TemporaryDeliveryError(f"{self.name} server {self.address}: {what}{reason}")

    def interrupt(self) -> None:
        """From any thread: shut the connection down (a blocked read or write wakes up)."""
        self.interrupted = True
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    # --- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, read the greeting, EHLO/LHLO, STARTTLS and AUTH as configured."""
        try:
            if self.address.path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(self.address.path)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(
                    (self.address.host, self.address.port), timeout=self.timeout
                )
                # Commands are small writes followed by a wait for the reply: without this,
                # Nagle's algorithm and the server's delayed ACK add a wait per message.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise self._fail("cannot connect", exc) from exc
        self._sock = sock
        self._buf.clear()
        greeting = self.read_reply()
        if greeting.code != 220:
            raise self._fail(f"refused the connection ({greeting})")
        self._hello()
        if self.starttls:
            self._start_tls()
        if self.username is not None:
            self._authenticate()

    def _hello(self) -> None:
        reply = self.command(f"{'LHLO' if self.lmtp else 'EHLO'} {self.helo_name}")
        if reply.code != 250 and not self.lmtp:
            reply = self.command(f"HELO {self.helo_name}")
            self.extensions = {}
            if reply.code == 250:
                return
        if reply.code != 250:
            raise self._fail(f"refused {'LHLO' if self.lmtp else 'EHLO'} ({reply})")
        self.extensions = {}
        for line in reply.lines[1:]:
            keyword, _, params = line.partition(" ")
            self.extensions[keyword.upper()] = params

    def _start_tls(self) -> None:
        if "STARTTLS" not in self.extensions:
            raise self._fail(
                "STARTTLS is required but the server does not offer it (not sending in clear)"
            )
        context = shared_context(self.ca_file)
        reply = self.command("STARTTLS")
        if reply.code != 220:
            raise self._fail(f"refused STARTTLS ({reply})")
        if self._buf:  # bytes sent before the handshake would be read as if protected
            raise self._fail("sent data after its STARTTLS reply (injection attempt?)")
        assert self._sock is not None
        hostname = self.address.host or "localhost"
        try:
            self._sock.settimeout(self.timeout)  # for the whole handshake
            self._sock = context.wrap_socket(self._sock, server_hostname=hostname)
        except (OSError, ssl.SSLError) as exc:
            raise self._fail("TLS handshake failed", exc) from exc
        self._hello()

    def _authenticate(self) -> None:
        if not isinstance(self._sock, ssl.SSLSocket):
            raise self._fail("will not send the relay password in clear: enable STARTTLS")
        methods = self.extensions.get("AUTH", "").upper().split()
        user, password = self.username or "", self.password or ""
        if "PLAIN" in methods:
            token = b64encode(f"\0{user}\0{password}".encode()).decode()
            reply = self.command(f"AUTH PLAIN {token}", secret=True)
        elif "LOGIN" in methods:
            reply = self.command("AUTH LOGIN")
            if reply.code == 334:
                reply = self.command(b64encode(user.encode()).decode(), secret=True)
            if reply.code == 334:
                reply = self.command(b64encode(password.encode()).decode(), secret=True)
        else:
            raise self._fail("offers neither AUTH PLAIN nor AUTH LOGIN")
        if reply.code != 235:
            raise self._fail(f"rejected the relay credentials ({reply})")

    # --- the wire ----------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise TemporaryDeliveryError(f"{self.name} server {self.address}: not connected")
        try:
            sock.settimeout(self.timeout)  # a total for the whole write
            sock.sendall(data)
        except OSError as exc:
            raise self._fail("connection lost while sending", exc) from exc

    def _readline(self) -> bytes:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                return line
            if len(self._buf) > MAX_LINE:
                raise self._fail("sent a reply line that is far too long")
            sock = self._sock
            if sock is None:
                raise TemporaryDeliveryError(f"{self.name} server {self.address}: not connected")
            left = self.timeout
            if self._reply_deadline is not None:
                left = self._reply_deadline - time.monotonic()
                if left <= 0:
                    raise self._overdue()
            try:
                sock.settimeout(left)
                data = sock.recv(65536)
            except TimeoutError as exc:
                if self._reply_bytes:
                    raise self._overdue() from None
                raise self._fail("connection lost while waiting for a reply", exc) from exc
            except OSError as exc:
                raise self._fail("connection lost while waiting for a reply", exc) from exc
            if not data:
                raise self._fail("closed the connection")
            self._reply_bytes += len(data)
            self._buf += data

    def _overdue(self) -> TemporaryDeliveryError:
        return self._fail(
            f"kept sending without finishing its reply; gave up after {self.timeout:g} s"
        )

    def read_reply(self) -> Reply:
        """One reply, all its lines (``250-…`` continuation, ``250 …`` last)."""
        self._reply_deadline = time.monotonic() + self.timeout
        self._reply_bytes = 0
        try:
            return self._read_reply()
        finally:
            self._reply_deadline = None

    def _read_reply(self) -> Reply:
        code: bytes | None = None
        lines: list[str] = []
        while True:
            raw = self._readline().rstrip(b"\r\n")
            found = _REPLY_LINE.fullmatch(raw)
            if found is None or (code is not None and found.group(1) != code):
                raise self._fail(f"sent something that is not a reply: {raw[:80]!r}")
            code = found.group(1)
            lines.append(found.group(3).decode("utf-8", errors="replace").strip())
            if found.group(2) != b"-":
                return Reply(int(code), tuple(lines))
            if len(lines) >= MAX_REPLY_LINES:
                raise self._fail("sent a reply with too many lines")

    def command(self, line: str, *, secret: bool = False) -> Reply:
        """Send one command line and read its reply."""
        if "\r" in line or "\n" in line:
            raise ValueError("a command line cannot contain CR or LF")
        del secret  # (nothing is logged here; kept to mark the lines that hold secrets)
        self._send(line.encode("utf-8") + b"\r\n")
        return self.read_reply()

    # --- one message -------------------------------------------------------------------------

    def mail(self, sender: str, smtputf8: bool = False) -> Reply:
        """``MAIL FROM:<sender>`` (``<>`` for ""); BODY=8BITMIME when the server offers it,
        SMTPUTF8 when asked for (a recipient outside ASCII: RFC 6531)."""
        params = " BODY=8BITMIME" if "8BITMIME" in self.extensions else ""
        if smtputf8:
            params += " SMTPUTF8"
        reply = self.command(f"MAIL FROM:<{sender}>{params}")
        self.in_transaction = True
        self._accepted = 0
        return reply

    def rcpt(self, recipient: str) -> Reply:
        reply = self.command(f"RCPT TO:<{recipient}>")
        if 200 <= reply.code < 300:
            self._accepted += 1
        return reply

    def data(self) -> Reply:
        """``DATA``; after a 354, stream with ``write`` and end with ``end_data``."""
        reply = self.command("DATA")
        if reply.code == 354:
            self._encoder = DataEncoder()
        return reply

    def write(self, chunk: bytes) -> None:
        assert self._encoder is not None, "DATA not started"
        data = self._encoder.feed(chunk)
        if data:
            self._send(data)

    def end_data(self) -> list[Reply]:
        """Send the terminator; the replies: one per accepted recipient (LMTP), else one."""
        assert self._encoder is not None, "DATA not started"
        self._send(self._encoder.finish())
        self._encoder = None
        count = self._accepted if self.lmtp else 1
        replies = [self.read_reply() for _ in range(count)]
        self.in_transaction = False
        return replies

    @property
    def in_data(self) -> bool:
        return self._encoder is not None

    def rset(self) -> Reply:
        reply = self.command("RSET")
        self.in_transaction = False
        self._encoder = None
        return reply

    def __del__(self) -> None:
        self.close()  # closed explicitly: no ResourceWarning from a forgotten connection

    # --- the end -----------------------------------------------------------------------------

    def quit(self) -> None:
        """``QUIT`` politely (unless in the middle of DATA), then close; never raises."""
        if self._sock is not None and self._encoder is None:
            timeout, self.timeout = self.timeout, min(self.timeout, 5.0)
            try:
                with contextlib.suppress(TemporaryDeliveryError, OSError):
                    self.command("QUIT")
            finally:
                self.timeout = timeout
        self.close()

    def close(self) -> None:
        """Drop the connection at once (a transaction in progress is not delivered)."""
        sock, self._sock = self._sock, None
        self._encoder = None
        self.in_transaction = False
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
