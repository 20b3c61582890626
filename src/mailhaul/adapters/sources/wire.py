"""A buffered line/literal reader over a (possibly TLS) socket, shared by POP3 and IMAP.

Every socket or TLS error becomes a domain ``SourceError``: callers never see ``OSError``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import threading
import time

from mailhaul.adapters.tls import client_context
from mailhaul.domain.errors import (
    ProtocolViolation,
    TlsFailure,
    TransientSourceError,
)
from mailhaul.domain.options import Security, SourceEndpoint

RECV_SIZE = 256 * 1024
MAX_LINE = 64 * 1024
_DOT_LINE = re.compile(rb"\n\.\r?\n")  # the final "." line of a multi-line reply
_EMPTY_BLOCK = re.compile(rb"\.\r?\n")  # ... when it is the reply's only line
CONTEXT_MAX_AGE = 600.0
"""Seconds a TLS client context is reused before the CAs are read again."""

_ContextKey = tuple[str | None, bool, tuple[str | None, ...]]
_contexts: dict[_ContextKey, tuple[float, tuple[int, int, int] | None, ssl.SSLContext]] = {}
_contexts_lock = threading.Lock()


def _file_stamp(path: str | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def shared_context(endpoint: SourceEndpoint) -> ssl.SSLContext:
    """``client_context(endpoint)``, reused by every connection with the same CA settings.

    Building a context reads the CA store (the system's: ~20 ms of CPU), which would be
    most of a "nothing new" poll's cost. A context is rebuilt when its ``ca_file`` changes
    on disk, when SSL_CERT_FILE/SSL_CERT_DIR change, and after CONTEXT_MAX_AGE seconds (so
    updated system CAs are picked up by a long-running service).
    """
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    key: _ContextKey = (endpoint.ca_file, endpoint.verify_cert, env)
    stamp = _file_stamp(endpoint.ca_file)
    now = time.monotonic()
    with _contexts_lock:
        cached = _contexts.get(key)
    if cached is not None and cached[1] == stamp and now - cached[0] < CONTEXT_MAX_AGE:
        return cached[2]
    context = client_context(endpoint)  # raises ConfigError for an unreadable CA file
    with _contexts_lock:
        _contexts[key] = (now, stamp, context)
    return context


class Wire:
    """One connection to a source server, with a receive buffer."""

    def __init__(self, endpoint: SourceEndpoint) -> None:
        self.endpoint = endpoint
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._pos = 0
        self.tls_active = False

    # connection -------------------------------------------------------------------------
    def open(self) -> None:
        """Connect; with ``security=ssl`` also complete the TLS handshake."""
        ep = self.endpoint
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=ep.timeout)
        except TimeoutError as exc:
            raise TransientSourceError(f"connect to {ep.host}:{ep.port} timed out") from exc
        except OSError as exc:
            raise TransientSourceError(f"cannot connect to {ep.host}:{ep.port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        if ep.security is Security.SSL:
            self.start_tls()

    def start_tls(self) -> None:
        """Wrap the socket in TLS (implicit TLS, or after a STARTTLS/STLS go-ahead)."""
        assert self._sock is not None
        if self._pos < len(self._buf):
            # Bytes after the go-ahead and before the handshake: a STARTTLS injection attempt.
            raise ProtocolViolation("server sent data before the TLS handshake")
        context = shared_context(self.endpoint)
        try:
            self._sock = context.wrap_socket(self._sock, server_hostname=self.endpoint.host)
        except ssl.SSLCertVerificationError as exc:
            self.abort()
            raise TlsFailure(
                f"certificate of {self.endpoint.host} rejected: {exc.verify_message}"
            ) from exc
        except (ssl.SSLError, OSError) as exc:
            self.abort()
            raise TlsFailure(f"TLS handshake with {self.endpoint.host} failed: {exc}") from exc
        self.tls_active = True

    def abort(self) -> None:
        """Close the socket without ceremony; never raises."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def is_open(self) -> bool:
        """Whether the socket is still open."""
        return self._sock is not None

    # sending ----------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        if self._sock is None:
            raise TransientSourceError("connection is closed")
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise TransientSourceError("timed out sending to the server") from exc
        except OSError as exc:
            raise TransientSourceError(f"connection lost while sending: {exc}") from exc

    # receiving --------------------------------------------------------------------------
    def _fill(self) -> None:
        """Read more bytes from the socket into the buffer (compacting it first)."""
        if self._sock is None:
            raise TransientSourceError("connection is closed")
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        try:
            data = self._sock.recv(RECV_SIZE)
        except TimeoutError as exc:
            raise TransientSourceError("timed out waiting for the server") from exc
        except OSError as exc:
            raise TransientSourceError(f"connection lost: {exc}") from exc
        if not data:
            raise TransientSourceError("the server closed the connection")
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

    def read_dot_block(self, line_limit: int = MAX_LINE) -> bytes:
        """The lines of a multi-line reply, up to and without its final ``.`` line.

        One search of the buffer per read instead of a call per line (a UIDL listing of
        2,000 messages is 2,000 lines). Line endings and dot-stuffing are left as sent; a
        line longer than ``line_limit`` is a violation.
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
            newline = buf.rfind(b"\n", pos)
            if len(buf) - (newline + 1 if newline >= 0 else pos) > line_limit:
                raise ProtocolViolation(f"server sent a line over {line_limit} bytes")
            self._fill()

    def read_some(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` (at least one) bytes, from the buffer or the socket."""
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
