"""A buffered line/literal reader over a (possibly TLS) socket, shared by POP3 and IMAP.

Every socket or TLS error becomes a domain ``SourceError``: callers never see ``OSError``.

Bounds a server cannot extend by talking: one read waits at most ``endpoint.timeout``;
between two signs of *progress* (a command sent or answered, ``PROGRESS_BYTES`` of message
data the caller asked for) the server gets at most ``COMMAND_FACTOR`` times that of our
attention (time waiting for it and, between ``begin_attending()`` and ``end_attending()``,
handling what it sent; not the time the caller spends delivering); the run's ``RunGuard``
adds its stall limit, total deadline and cancellation (which shuts the socket down from
another thread). Running out of any of them raises ``ServerStalled``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from collections.abc import Callable

from mailhaul.adapters.tls import shared_context
from mailhaul.domain.deadlines import current_guard
from mailhaul.domain.errors import (
    ProtocolViolation,
    ServerStalled,
    TlsFailure,
    TransientSourceError,
)
from mailhaul.domain.network_words import certificate_hint, connect_failure
from mailhaul.domain.options import Security, SourceEndpoint

RECV_SIZE = 256 * 1024
MAX_LINE = 64 * 1024
_DOT_LINE = re.compile(rb"\n\.\r?\n")  # the final "." line of a multi-line reply
_EMPTY_BLOCK = re.compile(rb"\.\r?\n")  # ... when it is the reply's only line
MAX_BLOCK = 32 * 1024 * 1024
"""The largest multi-line reply (a POP3 UIDL or LIST listing) accepted, in bytes."""
COMMAND_FACTOR = 2.0
"""A command gets this many times ``poll.timeout`` of the server's time without progress."""
PROGRESS_BYTES = 64 * 1024
"""Message data the caller asked for counts as progress in units of this many bytes."""


class Wire:
    """One connection to a source server, with a receive buffer and the bounds above."""

    def __init__(self, endpoint: SourceEndpoint) -> None:
        self.endpoint = endpoint
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._pos = 0
        self.tls_active = False
        self.cert_expires: float | None = None
        """When the server's verified certificate expires (Unix time); None without one."""
        self.guard = current_guard()
        self.command_timeout = COMMAND_FACTOR * endpoint.timeout
        self.received = 0
        """Bytes received from the server on this connection so far."""
        self._spent = 0.0  # seconds of attention since the last progress
        self._since: float | None = None  # when the outermost attending() block began
        self._depth = 0
        self._payload = 0  # bytes of asked-for message data since the last progress
        self._unregister: Callable[[], None] | None = None
        self._timeout_set = endpoint.timeout  # the socket's timeout now

    # connection -------------------------------------------------------------------------
    def open(self) -> None:
        """Connect; with ``security=ssl`` also complete the TLS handshake."""
        ep = self.endpoint
        self._stop_if_over()
        self._timeout_set = self._wait_limit()
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=self._timeout_set)
        except TimeoutError as exc:
            raise TransientSourceError(f"connect to {ep.host}:{ep.port} timed out") from exc
        except OSError as exc:
            resolver = isinstance(exc, socket.gaierror)
            raise TransientSourceError(
                connect_failure(ep.host, ep.port, exc, resolver=resolver)
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._unregister = self.guard.register(self.interrupt)
        self.progress()  # the greeting is owed from now
        if ep.security is Security.SSL:
            self.start_tls()

    def start_tls(self) -> None:
        """Wrap the socket in TLS (implicit TLS, or after a STARTTLS/STLS go-ahead)."""
        assert self._sock is not None
        if self._pos < len(self._buf):
            # Bytes after the go-ahead and before the handshake: a STARTTLS injection attempt.
            raise ProtocolViolation("server sent data before the TLS handshake")
        context = shared_context(self.endpoint.ca_file, self.endpoint.verify_cert)
        self._stop_if_over()
        self.begin_attending()
        try:
            # The timeout bounds the whole handshake (Python's TLS calls use it as a deadline).
            self._set_timeout(self._sock, self._wait_limit())
            self._sock = context.wrap_socket(self._sock, server_hostname=self.endpoint.host)
        except ssl.SSLCertVerificationError as exc:
            self.abort()
            hint = certificate_hint(exc.verify_message or "")
            raise TlsFailure(
                f"certificate of {self.endpoint.host} rejected: {exc.verify_message}"
                + (f"; {hint}" if hint else "")
            ) from exc
        except TimeoutError as exc:  # a server too slow (or dripping) in the handshake
            self._stop_if_over(timed_out=True)
            self.abort()
            raise TransientSourceError(
                f"TLS handshake with {self.endpoint.host} timed out"
            ) from exc
        except (ssl.SSLError, OSError) as exc:
            self._stop_if_over()  # cancelled
            self.abort()
            raise TlsFailure(f"TLS handshake with {self.endpoint.host} failed: {exc}") from exc
        finally:
            self.end_attending()
        self.tls_active = True
        self.cert_expires = _not_after(self._sock)

    def abort(self) -> None:
        """Close the socket without ceremony; never raises."""
        sock, self._sock = self._sock, None
        unregister, self._unregister = self._unregister, None
        if unregister is not None:
            unregister()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def detach(self) -> tuple[socket.socket, bytes]:
        """Hand the open socket and the bytes received but not read yet to a new owner (the
        push watcher's event loop); this Wire is closed after, the socket left open."""
        sock, self._sock = self._sock, None
        if sock is None:
            raise TransientSourceError("connection is closed")
        unregister, self._unregister = self._unregister, None
        if unregister is not None:
            unregister()
        rest = bytes(self._buf[self._pos :])
        self._buf, self._pos = bytearray(), 0
        return sock, rest

    def interrupt(self) -> None:
        """From any thread: wake a blocked read or write (the socket is shut down)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    @property
    def is_open(self) -> bool:
        """Whether the socket is still open."""
        return self._sock is not None

    # bounds -----------------------------------------------------------------------------
    def progress(self) -> None:
        """A command was sent or answered: the server's time for the next one starts now."""
        self._spent = 0.0
        self._payload = 0
        if self._since is not None:
            self._since = time.monotonic()
        self.guard.progress()

    def payload(self, size: int) -> None:
        """``size`` bytes of message data the caller asked for arrived (progress per unit)."""
        self._payload += size
        if self._payload >= PROGRESS_BYTES:
            self.progress()

    def begin_attending(self) -> None:
        """From now until ``end_attending()``, time spent counts against the command."""
        self._depth += 1
        if self._depth == 1:
            self._since = time.monotonic()

    def end_attending(self) -> None:
        """The end of a ``begin_attending()`` span."""
        self._depth -= 1
        if self._depth == 0 and self._since is not None:
            self._spent += time.monotonic() - self._since
            self._since = None

    def _attention(self) -> float:
        """Seconds of the server's time used since the last progress."""
        since = self._since
        return self._spent + (time.monotonic() - since if since is not None else 0.0)

    def _wait_limit(self) -> float:
        """How long the next blocking call may wait: the idle timeout or less."""
        limits = [self.endpoint.timeout, self.command_timeout - self._attention()]
        remaining = self.guard.remaining()
        if remaining is not None:
            limits.append(remaining)
        return max(min(limits), 0.001)

    def _set_timeout(self, sock: socket.socket, limit: float) -> None:
        """Give ``sock`` the timeout ``limit`` (no system call when it has it already)."""
        if limit != self._timeout_set:
            sock.settimeout(limit)
            self._timeout_set = limit

    def _stop_if_over(self, timed_out: bool = False) -> None:
        """Raise ServerStalled if the command or the run is out of time (or cancelled);
        ``timed_out``: a wait shorter than the idle timeout just ran out."""
        problem = self.guard.problem(slack=0.05 if timed_out else 0.0)
        if problem is not None:
            self.abort()
            raise ServerStalled(problem)
        if self._attention() >= self.command_timeout - (0.05 if timed_out else 0.0):
            self.abort()
            raise ServerStalled(
                "the server kept sending without answering the command; gave up after"
                f" {self.command_timeout:g} s"
            )

    # sending ----------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Send all of ``data`` (a command: progress)."""
        sock = self._sock
        if sock is None:
            raise TransientSourceError("connection is closed")
        self.progress()
        self._stop_if_over()
        limit = self._wait_limit()
        try:
            self._set_timeout(sock, limit)
            sock.sendall(data)
        except TimeoutError as exc:
            self._stop_if_over(timed_out=limit < self.endpoint.timeout)
            raise TransientSourceError("timed out sending to the server") from exc
        except OSError as exc:
            self._stop_if_over()
            raise TransientSourceError(f"connection lost while sending: {exc}") from exc

    # receiving --------------------------------------------------------------------------
    def _fill(self) -> None:
        """Read more bytes from the socket into the buffer (compacting it first)."""
        sock = self._sock
        if sock is None:
            raise TransientSourceError("connection is closed")
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self.begin_attending()
        limit = self.endpoint.timeout
        try:
            self._stop_if_over()
            limit = self._wait_limit()
            self._set_timeout(sock, limit)
            data = sock.recv(RECV_SIZE)
        except TimeoutError as exc:
            self._stop_if_over(timed_out=limit < self.endpoint.timeout)
            raise TransientSourceError("timed out waiting for the server") from exc
        except OSError as exc:
            self._stop_if_over()
            raise TransientSourceError(f"connection lost: {exc}") from exc
        finally:
            self.end_attending()
        if not data:
            self._stop_if_over()  # a shutdown by cancel() reads as an end of file
            raise TransientSourceError("the server closed the connection")
        self.received += len(data)
        self._buf += data

    def buffered(self) -> int:
        """How many received bytes wait in the buffer."""
        return len(self._buf) - self._pos

    def readline(self, limit: int = MAX_LINE) -> bytes:
        """One line including its line ending; a longer line than ``limit`` is a violation."""
        start = 0
        while True:
            idx = self._buf.find(b"\n", self._pos + start)
            if idx >= 0:
                line = bytes(self._buf[self._pos : idx + 1])
                self._pos = idx + 1
                if len(line) > limit:
                    raise ProtocolViolation(f"server sent a line over {limit} bytes")
                return line
            start = len(self._buf) - self._pos
            if start > limit:
                raise ProtocolViolation(f"server sent a line over {limit} bytes")
            self._fill()

    def read_dot_block(self, line_limit: int = MAX_LINE, size_limit: int = MAX_BLOCK) -> bytes:
        """The lines of a multi-line reply, up to and without its final ``.`` line.

        One search of the buffer per read instead of a call per line (a UIDL listing of
        2,000 messages is 2,000 lines). Line endings and dot-stuffing are left as sent; a
        line longer than ``line_limit`` is a violation, a reply over ``size_limit`` bytes
        makes the server stalled (it is held in memory whole).
        """
        scanned = 0  # bytes after self._pos searched already
        while True:
            buf, pos = self._buf, self._pos
            empty = _EMPTY_BLOCK.match(buf, pos)
            if empty is not None:
                self._pos = empty.end()
                return b""
            match = _DOT_LINE.search(buf, pos + max(scanned - 3, 0))  # "\n.\r\n" may straddle
            if match is not None:
                block = bytes(buf[pos : match.start() + 1])
                self._pos = match.end()
                if max(map(len, block.split(b"\n"))) > line_limit:
                    raise ProtocolViolation(f"server sent a line over {line_limit} bytes")
                return block
            scanned = len(buf) - pos
            if scanned > size_limit:
                self.abort()
                raise ServerStalled(
                    f"the server kept sending a listing past {size_limit // (1024 * 1024)} MiB"
                    " without ending it; gave up"
                )
            newline = buf.rfind(b"\n", pos)
            if len(buf) - (newline + 1 if newline >= 0 else pos) > line_limit:
                raise ProtocolViolation(f"server sent a line over {line_limit} bytes")
            self._fill()

    def read_some(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` (at least one) bytes of message data the caller asked for:
        from the buffer or the socket; counts as progress (see ``payload``)."""
        chunk = self.read_bytes(max_bytes)
        self.payload(len(chunk))
        return chunk

    def read_bytes(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` (at least one) bytes, not counted as progress."""
        if self._pos >= len(self._buf):
            self._fill()
        end = min(len(self._buf), self._pos + max_bytes)
        chunk = bytes(self._buf[self._pos : end])
        self._pos = end
        return chunk

    def peek_buffer(self) -> memoryview:
        """The unread part of the buffer (valid until the next read)."""
        return memoryview(self._buf)[self._pos :]

    def consume(self, count: int) -> None:
        """Mark ``count`` buffered bytes as read."""
        self._pos += count

    def fill(self) -> None:
        """Read more from the socket into the buffer (blocks; raises on EOF)."""
        self._fill()


def _not_after(sock: socket.socket) -> float | None:
    """The expiry of a verified peer certificate (an unverified one tells nothing)."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    try:
        not_after = (sock.getpeercert() or {}).get("notAfter")
        return float(ssl.cert_time_to_seconds(str(not_after))) if not_after else None
    except (ValueError, OSError):
        return None
