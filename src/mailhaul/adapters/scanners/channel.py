"""A bounded conversation with a scanner daemon over TCP or a unix socket: connect, send the
spool in blocks, read an answer of limited size before a deadline."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import BinaryIO

from mailhaul.domain.errors import ConfigError, ScannerUnavailable

BLOCK = 64 * 1024
MAX_ANSWER = 64 * 1024


def parse_address(text: str, setting: str) -> tuple[str, int] | str:
    """``host:port`` (``[v6]:port``) as a pair, or an absolute unix socket path as is."""
    value = text.strip()
    if value.startswith("/"):
        return value
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(
            f"setting {setting} must be host:port or the path of a unix socket, not {text!r}"
        )
    return host, int(port)


def blocks(spool: BinaryIO) -> Iterator[bytes]:
    """The spooled message from its start, in blocks."""
    spool.seek(0)
    while block := spool.read(BLOCK):
        yield block


class Channel:
    """One request to a scanner: ``send`` then ``answer``; ``timeout`` bounds each socket
    operation and ``deadline`` the whole exchange."""

    def __init__(self, name: str, address: tuple[str, int] | str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self._deadline = time.monotonic() + 3 * timeout
        try:
            if isinstance(address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(address)
                except BaseException:
                    sock.close()
                    raise
                self._sock = sock
            else:
                self._sock = socket.create_connection(address, timeout=timeout)
        except OSError as exc:
            raise self.failure(f"cannot connect to {_where(address)}", exc) from exc

    def failure(self, what: str, exc: BaseException | None = None) -> ScannerUnavailable:
        """A ScannerUnavailable saying what went wrong."""
        if isinstance(exc, TimeoutError | socket.timeout):
            return ScannerUnavailable(self.name, f"{what}: no answer within {self.timeout:g} s")
        if exc is not None:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return ScannerUnavailable(self.name, f"{what}: {reason}")
        return ScannerUnavailable(self.name, what)

    def send(self, data: bytes) -> None:
        """Send bytes; ScannerUnavailable when the scanner stops taking them."""
        self._check_deadline()
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise self.failure("the connection broke while sending", exc) from exc

    def finish_sending(self) -> None:
        """Half-close: the scanner sees the end of the request."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def answer(self, until: bytes | None = None) -> bytes:
        """Read until ``until`` (included) or the end of the connection, at most MAX_ANSWER."""
        data = bytearray()
        try:
            while len(data) <= MAX_ANSWER:
                self._check_deadline()
                chunk = self._sock.recv(BLOCK)
                if not chunk:
                    break
                data += chunk
                if until is not None and until in data:
                    break
        except OSError as exc:
            raise self.failure("the answer did not come", exc) from exc
        if len(data) > MAX_ANSWER:
            raise self.failure(f"an answer longer than {MAX_ANSWER} bytes")
        return bytes(data)

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise self.failure(f"no complete answer within {3 * self.timeout:g} s")

    def close(self) -> None:
        """Close the connection; never raises."""
        with contextlib.suppress(OSError):
            self._sock.close()


def _where(address: tuple[str, int] | str) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"
