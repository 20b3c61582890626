"""Hostile servers on 127.0.0.1 for tests: IMAP, POP3 and LMTP peers that never stop talking,
drip one byte at a time, or never answer.

Each server behaves well until the command named by ``at`` (a prefix of the command text
after the tag, case-insensitive; ``"greeting"`` for the greeting), and then misbehaves in
the chosen way until the test stops it:

- ``flood``: endless lines made by ``line(i)``, as fast as the client reads them;
- ``literal``: (IMAP) an unsolicited ``* 1 FETCH (UID 1 BODY[] {10000000000}`` and
  endless bytes of it;
- ``drip``: the start of an answer, then one byte every ``drip_every`` seconds, for ever;
- ``slow``: every answer from then on complete and correct, but sent a byte every
  ``drip_every`` seconds;
- ``silence``: nothing at all (the connection stays open).

What the clients did is recorded: ``commands`` (texts after the tag), ``sessions``,
``deletions`` (POP3 ``DELE``, IMAP ``STORE … \\Deleted`` and ``EXPUNGE``) and, for LMTP,
``messages`` (the data of each ``DATA``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LineFn = Callable[[int], bytes]
HUGE_LITERAL = 10_000_000_000


@dataclass
class Misbehaviour:
    """How a hostile server misbehaves, and from which command on."""

    mode: str  # flood | literal | drip | slow | silence
    at: str  # command prefix, or "greeting"
    line: LineFn = lambda i: b"* OK still working\r\n"
    start: bytes = b""  # sent before the flood or the drip (e.g. "+OK\r\n")
    drip_every: float = 0.2

    def matches(self, text: str) -> bool:
        return text.upper().startswith(self.at.upper())


class _Closed(Exception):
    """The client went away or the server stops."""


@dataclass
class _Peer:
    sock: socket.socket
    stopping: threading.Event
    buf: bytearray = field(default_factory=bytearray)
    byte_every: float = 0.0  # > 0: send a byte at a time, this many seconds apart

    def send(self, data: bytes) -> None:
        pieces = [data[i : i + 1] for i in range(len(data))] if self.byte_every else [data]
        for piece in pieces:
            if self.stopping.is_set():
                raise _Closed
            try:
                self.sock.sendall(piece)
            except OSError:
                raise _Closed from None
            if self.byte_every:
                time.sleep(self.byte_every)

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            self.recv()
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf[:] = rest
        return line + b"\n"

    def recv(self) -> None:
        while True:
            if self.stopping.is_set():
                raise _Closed
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                raise _Closed from None
            if not data:
                raise _Closed
            self.buf += data
            return

    def read_until(self, end: bytes) -> bytes:
        while end not in self.buf:
            self.recv()
        data, _, rest = bytes(self.buf).partition(end)
        self.buf[:] = rest
        return data + end


class HostileServer:
    """A threaded server on 127.0.0.1:``port``; subclasses speak a protocol in ``serve``."""

    def __init__(self, misbehaviour: Misbehaviour) -> None:
        self.misbehaviour = misbehaviour
        self.commands: list[str] = []
        self.deletions: list[str] = []
        self.messages: list[bytes] = []
        self.sessions = 0
        self.misbehaved = threading.Event()  # set once it started misbehaving
        self.stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> HostileServer:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.settimeout(0.2)
            with self._lock:
                self._socks.append(sock)
                self.sessions += 1
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        peer = _Peer(sock, self.stopping)
        with contextlib.suppress(_Closed):
            self.serve(peer)
        with contextlib.suppress(OSError):
            sock.close()

    def serve(self, peer: _Peer) -> None:
        raise NotImplementedError

    def misbehave(self, peer: _Peer, tag: str = "") -> None:
        """Misbehave until the server stops or the client leaves (returns only when ``slow``:
        the conversation goes on, slowly)."""
        how = self.misbehaviour
        self.misbehaved.set()
        if how.mode == "slow":
            peer.byte_every = how.drip_every
            return
        peer.send(how.start.replace(b"$TAG", tag.encode()))
        if how.mode == "flood":
            i = 1
            while True:
                peer.send(b"".join(how.line(n) for n in range(i, i + 1000)))
                i += 1000
        if how.mode == "literal":
            peer.send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % HUGE_LITERAL)
            chunk = b"x" * 65536
            while True:
                peer.send(chunk)
        if how.mode == "drip":
            while True:
                peer.send(b"a")
                time.sleep(how.drip_every)
        while True:  # silence
            if self.stopping.wait(0.1):
                raise _Closed


MESSAGE = b"Subject: hostile\r\n\r\nhello\r\n"


class HostileImap(HostileServer):
    """IMAP with one message (UID 1) in INBOX, until ``misbehaviour.at``."""

    def serve(self, peer: _Peer) -> None:
        if self.misbehaviour.at == "greeting":
            self.misbehave(peer)
        peer.send(b"* OK [CAPABILITY IMAP4rev1 UIDPLUS] hostile ready\r\n")
        while True:
            line = peer.readline().rstrip(b"\r\n").decode("utf-8", "replace")
            tag, _, text = line.partition(" ")
            self.commands.append(text)
            upper = text.upper()
            if self.misbehaviour.matches(text):
                self.misbehave(peer, tag)
            if upper.startswith("CAPABILITY"):
                peer.send(b"* CAPABILITY IMAP4rev1 UIDPLUS\r\n")
            elif upper.startswith(("SELECT", "EXAMINE")):
                peer.send(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 2] ok\r\n")
            elif upper.startswith("STATUS"):
                peer.send(b"* STATUS INBOX (UIDVALIDITY 7 UIDNEXT 2 MESSAGES 1 UNSEEN 1)\r\n")
            elif upper.startswith("LIST"):
                peer.send(b'* LIST () "/" INBOX\r\n')
            elif upper.startswith("UID FETCH") and "BODY" in upper:
                peer.send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n" % (len(MESSAGE), MESSAGE))
            elif upper.startswith("UID FETCH"):
                peer.send(b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE %d)\r\n" % len(MESSAGE))
            elif upper.startswith(("UID STORE", "EXPUNGE", "UID EXPUNGE")):
                if "DELETED" in upper or "EXPUNGE" in upper:
                    self.deletions.append(text)
            elif upper.startswith("LOGOUT"):
                peer.send(b"* BYE bye\r\n%s OK done\r\n" % tag.encode())
                return
            peer.send(b"%s OK done\r\n" % tag.encode())


class HostilePop3(HostileServer):
    """POP3 with one message, until ``misbehaviour.at``."""

    def serve(self, peer: _Peer) -> None:
        if self.misbehaviour.at == "greeting":
            self.misbehave(peer)
        peer.send(b"+OK hostile ready\r\n")
        while True:
            text = peer.readline().rstrip(b"\r\n").decode("utf-8", "replace")
            self.commands.append(text)
            verb = text.split(" ", 1)[0].upper()
            if self.misbehaviour.matches(text):
                self.misbehave(peer)
            if verb == "CAPA":
                peer.send(b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n")
            elif verb == "UIDL":
                peer.send(b"+OK\r\n1 uid-1\r\n.\r\n")
            elif verb == "LIST":
                peer.send(b"+OK\r\n1 %d\r\n.\r\n" % len(MESSAGE))
            elif verb in ("RETR", "TOP"):
                peer.send(b"+OK\r\n" + MESSAGE + b".\r\n")
            elif verb == "DELE":
                self.deletions.append(text)
                peer.send(b"+OK deleted\r\n")
            elif verb == "QUIT":
                peer.send(b"+OK bye\r\n")
                return
            else:
                peer.send(b"+OK\r\n")


class HostileLmtp(HostileServer):
    """An LMTP server that accepts everything until ``misbehaviour.at`` (``"end of data"``:
    after the data's terminator)."""

    def serve(self, peer: _Peer) -> None:
        peer.send(b"220 hostile LMTP ready\r\n")
        while True:
            text = peer.readline().rstrip(b"\r\n").decode("utf-8", "replace")
            self.commands.append(text)
            verb = text.split(" ", 1)[0].upper()
            if self.misbehaviour.matches(text):
                self.misbehave(peer)
            if verb == "LHLO":
                peer.send(b"250-hostile\r\n250 8BITMIME\r\n")
            elif verb == "DATA":
                peer.send(b"354 go ahead\r\n")
                self.messages.append(peer.read_until(b"\r\n.\r\n"))
                if self.misbehaviour.at == "end of data":
                    self.misbehave(peer)
                peer.send(b"250 2.0.0 stored\r\n")
            elif verb == "QUIT":
                peer.send(b"221 bye\r\n")
                return
            else:
                peer.send(b"250 ok\r\n")
