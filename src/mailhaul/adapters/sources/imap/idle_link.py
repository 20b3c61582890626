"""One IDLE connection (RFC 2177) as the push watcher's event loop holds it.

Non-blocking: ``read()`` takes what the socket has (plain or TLS) and says what it heard;
nothing waits. The connection only ever learns that the folder changed: ``* n EXISTS``
above the known count and ``* n RECENT`` are new mail, ``EXPUNGE`` and ``FETCH`` (flags) are
counted as changes only (a poll's own deletions must not ask for another poll). Nothing is
fetched or deleted here.

The keepalive is a round trip the caller times: ``end_idle()`` sends ``DONE``; the IDLE's
tagged completion is answered with a new ``IDLE`` at once, and its ``+`` continuation
ends the round trip (``Heard.idling``). ``leave()`` ends politely: ``DONE`` (while idling)
and ``LOGOUT``. A line over ``MAX_LINE`` bytes ends the connection; literals inside
untagged data are skipped, never held.

With NOTIFY (``notify``: what else it hears of, see ``notify.py``) a ``* STATUS`` line for
a watched folder is new mail too.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailhaul.adapters.sources.imap.notify import NotifyPlan, status_folder
from mailhaul.domain.errors import TransientSourceError
from mailhaul.domain.redaction import Redactor

RECV_SIZE = 16 * 1024
MAX_LINE = 64 * 1024
MAX_REASON = 200
_NUMBERED = re.compile(rb"^\* (\d{1,10}) (EXISTS|RECENT|EXPUNGE|FETCH)\b", re.IGNORECASE)
_BYE = re.compile(rb"^\* BYE\b ?(.*)$", re.IGNORECASE)
_TAGGED = re.compile(rb"^([A-Za-z0-9]+) (OK|NO|BAD)\b ?(.*)$", re.IGNORECASE)
_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}$")


class Phase(StrEnum):
    """Where the conversation stands."""

    IDLING = "idling"  # IDLE runs: changes arrive as untagged data
    ENDING = "ending"  # DONE sent: the IDLE's tagged completion is owed
    STARTING = "starting"  # IDLE sent: its "+" continuation is owed
    LEAVING = "leaving"  # LOGOUT sent


@dataclass
class Heard:
    """What one ``read()`` brought."""

    new_mail: bool = False
    changes: int = 0  # untagged EXISTS/RECENT/EXPUNGE/FETCH lines
    idling: bool = False  # an IDLE (re)started: the keepalive round trip is over
    closed: str | None = None  # why the connection ended (BYE, end of file, refusal)


class IdleLink:
    """A signed-in connection idling on one folder; ``exists`` is its message count."""

    def __init__(
        self, sock: socket.socket, buffered: bytes, exists: int, tag: str, redact: Redactor
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._buf = bytearray()
        self._pending = buffered  # received during the hand-over: read at the first read()
        self._skip = 0  # bytes of a literal still to drop
        self.exists = exists
        self.mark: tuple[int | None, int | None] = (None, None)
        """The folder's (UIDVALIDITY, UIDNEXT) when it was opened: if a later connection
        finds others, mail may have come while nobody watched."""
        self.notify: NotifyPlan | None = None
        """Set when the server took NOTIFY SET: STATUS lines of other folders are news."""
        self.phase = Phase.IDLING
        self._tag = tag
        self._logout_tag = ""
        self._counter = 0
        self._redact = redact

    def fileno(self) -> int:
        """The socket's descriptor (for the selector)."""
        return self._sock.fileno()

    # reading ----------------------------------------------------------------------------
    def read(self) -> Heard:
        """Everything the socket has now, handled; never blocks."""
        heard = Heard()
        if self._pending:
            data, self._pending = self._pending, b""
            self._feed(data, heard)
        while heard.closed is None:
            try:
                data = self._sock.recv(RECV_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except OSError as exc:
                heard.closed = f"connection lost: {exc}"
                break
            if not data:
                heard.closed = "the server closed the connection"
                break
            self._feed(data, heard)
        return heard

    def _feed(self, data: bytes, heard: Heard) -> None:
        pos = 0
        while pos < len(data) and heard.closed is None:
            if self._skip:
                taken = min(self._skip, len(data) - pos)
                self._skip -= taken
                pos += taken
                continue
            end = data.find(b"\n", pos)
            if end < 0:
                self._buf += data[pos:]
                if len(self._buf) > MAX_LINE:
                    heard.closed = f"the server sent a line over {MAX_LINE} bytes"
                return
            self._buf += data[pos : end + 1]
            pos = end + 1
            line, self._buf = bytes(self._buf), bytearray()
            if len(line) > MAX_LINE:
                heard.closed = f"the server sent a line over {MAX_LINE} bytes"
                return
            self._line(line.rstrip(b"\r\n"), heard)

    def _line(self, line: bytes, heard: Heard) -> None:
        literal = _LITERAL.search(line)
        if literal is not None:
            self._skip = int(literal.group(1))
        if line.startswith(b"+"):
            if self.phase is Phase.STARTING:
                self.phase = Phase.IDLING
                heard.idling = True
            return
        if self.notify is not None:
            is_status, folder = status_folder(line)
            if is_status:
                heard.changes += 1
                heard.new_mail = heard.new_mail or self.notify.covers(folder)
                return
        if (numbered := _NUMBERED.match(line)) is not None:
            self._change(int(numbered.group(1)), numbered.group(2).upper(), heard)
            return
        if (bye := _BYE.match(line)) is not None:
            if self.phase is not Phase.LEAVING:
                heard.closed = f"the server ended the session: {self._words(bye.group(1))}"
            return
        if (tagged := _TAGGED.match(line)) is not None:
            self._completed(tagged.group(1).decode(), tagged.group(2).upper(), tagged, heard)

    def _change(self, number: int, what: bytes, heard: Heard) -> None:
        heard.changes += 1
        if what == b"EXISTS":
            heard.new_mail = heard.new_mail or number > self.exists
            self.exists = number
        elif what == b"RECENT":
            heard.new_mail = heard.new_mail or number > 0
        elif what == b"EXPUNGE":
            self.exists = max(self.exists - 1, 0)

    def _completed(self, tag: str, kind: bytes, tagged: re.Match[bytes], heard: Heard) -> None:
        if tag == self._logout_tag:
            heard.closed = "logged out"
        elif tag != self._tag:
            return
        elif kind != b"OK":
            heard.closed = f"the server refused IDLE: {self._words(tagged.group(3))}"
        elif self.phase is Phase.ENDING:
            self._tag = self._next_tag()
            self.phase = Phase.STARTING
            self._send(f"{self._tag} IDLE\r\n".encode())
        elif self.phase is not Phase.LEAVING:
            heard.closed = "the server ended IDLE by itself"

    def _words(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace")
        text = "".join(ch if ch.isprintable() else "?" for ch in text)[:MAX_REASON]
        return self._redact(text) or "no reason given"

    # sending ----------------------------------------------------------------------------
    def end_idle(self) -> None:
        """``DONE``: the keepalive round trip starts (ends when IDLE runs again)."""
        if self.phase is Phase.IDLING:
            self.phase = Phase.ENDING
            self._send(b"DONE\r\n")

    def leave(self) -> None:
        """End politely: ``DONE`` (while idling) and ``LOGOUT``, in one write."""
        if self.phase is Phase.LEAVING:
            return
        done = b"DONE\r\n" if self.phase is Phase.IDLING else b""
        self._logout_tag = self._next_tag()
        self.phase = Phase.LEAVING
        self._send(done + f"{self._logout_tag} LOGOUT\r\n".encode())

    def close(self) -> None:
        """Close the socket; never raises."""
        with contextlib.suppress(OSError):
            self._sock.close()

    def _next_tag(self) -> str:
        self._counter += 1
        return f"W{self._counter}"

    def _send(self, data: bytes) -> None:
        """A few bytes, written at once or not at all (a full send buffer is a dead peer)."""
        try:
            sent = self._sock.send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError) as exc:
            raise TransientSourceError("the connection takes no more data") from exc
        except OSError as exc:
            raise TransientSourceError(f"connection lost while sending: {exc}") from exc
        if sent != len(data):
            raise TransientSourceError("the connection takes no more data")


def leave_all(links: Sequence[IdleLink], wait: float) -> None:
    """``leave()`` every link at once, give their answers (the server's BYE and LOGOUT
    completion, or its closing) at most ``wait`` seconds together, then close them all."""
    open_links: dict[int, IdleLink] = {}
    with selectors.DefaultSelector() as selector:
        for link in links:
            try:
                link.leave()
            except TransientSourceError:
                link.close()
                continue
            selector.register(link, selectors.EVENT_READ, link)
            open_links[id(link)] = link
        end = time.monotonic() + wait
        while open_links and (left := end - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                link = key.data
                if link.read().closed is not None:
                    selector.unregister(link)
                    link.close()
                    open_links.pop(id(link), None)
    for link in open_links.values():
        link.close()
