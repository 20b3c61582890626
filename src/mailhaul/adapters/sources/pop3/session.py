"""The POP3 session's I/O layer: replies owed, streamed bodies, and error hygiene.

Every reply the server owes the client (a pipelined RETR, an abandoned body) is queued,
and ``sync()`` reads and discards what a caller walked away from, so the session never
falls out of step. Any I/O or protocol error drops the connection (it may be out of step)
and any secret the server echoed back is scrubbed from the error's text.

A status line or the end of a multi-line reply is progress for the ``Wire``'s command
deadline, and so is message data read for a caller; a listing is bounded in size.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from mailhaul.adapters.sources.pop3.parsing import (
    DotUnstuffer,
    Reply,
    parse_reply,
    unstuff_block,
)
from mailhaul.adapters.sources.wire import Wire
from mailhaul.domain.errors import SourceError
from mailhaul.domain.options import SourceEndpoint
from mailhaul.domain.redaction import Redactor

CHUNK_SIZE = 256 * 1024
"""The largest chunk a message body is yielded in."""
REPLY_LIMIT = 8 * 1024
"""The longest status or listing line accepted (RFC 2449 allows 512 octets)."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(eq=False)
class Pending:
    """A reply the server owes us, for ``verb`` (on message ``number``, 0 for none)."""

    verb: str
    number: int
    multiline: bool
    drained: bool = False


class Body:
    """The dot-stuffed body of one multi-line reply, read from the wire on demand.

    Once the body is discarded (its reader moved on, or another command needed the
    connection), reading what is left of it raises instead of ending early: a caller must
    never mistake a cut-off message for a whole one.
    """

    def __init__(self, wire: Wire, on_error: Callable[[], None]) -> None:
        self._wire = wire
        self._on_error = on_error
        self._decoder = DotUnstuffer()
        self._cut = False

    @property
    def done(self) -> bool:
        """Whether the terminating line has been read."""
        return self._decoder.done

    def next_chunk(self) -> bytes | None:
        """The next non-empty piece of the body (at most ``CHUNK_SIZE``), None after its end."""
        if self._cut:
            raise SourceError("message abandoned: the rest of it was skipped to stay in step")
        return self._read(payload=True)

    def chunks(self) -> Iterator[bytes]:
        """The rest of the body, chunk by chunk."""
        while (chunk := self.next_chunk()) is not None:
            yield chunk

    def discard(self) -> None:
        """Read and throw away the rest of the body."""
        if not self._decoder.done:
            self._cut = True
        while self._read(payload=False) is not None:
            pass

    def _read(self, payload: bool) -> bytes | None:
        wire, decoder = self._wire, self._decoder
        try:
            while not decoder.done:
                view = wire.peek_buffer()
                try:
                    data = bytes(view[:CHUNK_SIZE])
                finally:
                    view.release()
                out, used = decoder.feed(data)
                wire.consume(used)
                if out:
                    if payload:
                        wire.payload(len(out))
                    return out
                if not used:
                    wire.fill()
        except SourceError:
            self._cut = True
            self._on_error()
            raise
        wire.progress()  # the reply is complete
        return None


class Pop3Connection:
    """One POP3 connection: sends commands, reads replies, keeps track of what is owed."""

    def __init__(self, endpoint: SourceEndpoint, redact: Redactor) -> None:
        self.wire = Wire(endpoint)
        self.redact = redact
        """Masks the password in any text the server sent back."""
        self._pending: deque[Pending] = deque()
        self._body: Body | None = None
        self.broken = False

    # connection -------------------------------------------------------------------------
    def open(self) -> None:
        """Connect (with implicit TLS if configured)."""
        self.broken = False
        self.guarded(self.wire.open)

    def start_tls(self) -> None:
        """Upgrade to TLS after the server's go-ahead."""
        self.guarded(self.wire.start_tls)

    @property
    def usable(self) -> bool:
        """Whether the socket is open and the session in step."""
        return self.wire.is_open and not self.broken

    def kill(self) -> None:
        """Drop the connection; whatever is owed is forgotten. Never raises."""
        self.broken = True
        self._pending.clear()
        self._body = None
        self.wire.abort()

    # commands and replies ----------------------------------------------------------------
    def send(self, commands: str, pending: Sequence[Pending] = ()) -> None:
        """Send one or more CRLF-terminated command lines, owing ``pending`` replies."""
        self.guarded(self.wire.send, commands.encode("utf-8"))
        self._pending.extend(pending)

    def readline(self) -> bytes:
        """One reply line (at most ``REPLY_LIMIT`` bytes)."""
        return self.guarded(self.wire.readline, REPLY_LIMIT)

    def parse(self, line: bytes) -> Reply:
        """A status line as a Reply, secrets scrubbed from its text (garbage drops the line)."""
        reply = self.guarded(parse_reply, line)
        self.wire.progress()
        text = self.redact(reply.text)
        return reply if text == reply.text else dataclasses.replace(reply, text=text)

    def read_reply(self) -> Reply:
        """The next status line."""
        return self.parse(self.readline())

    def read_lines(self) -> list[bytes]:
        """The lines of a short multi-line reply (CAPA, UIDL, LIST), unstuffed."""
        block = self.guarded(self.wire.read_dot_block, REPLY_LIMIT)
        self.wire.progress()
        return unstuff_block(block)

    def take_reply(self, pend: Pending) -> Reply:
        """The status line owed for ``pend``, which must be the oldest still owed."""
        if pend.drained or not self._pending or self._pending[0] is not pend:
            raise SourceError("the retrieval was interrupted by another command")
        self._pending.popleft()
        return self.read_reply()

    def open_body(self) -> Body:
        """The body following a +OK multi-line status; drained by ``sync()`` if abandoned."""
        body = Body(self.wire, self.kill)
        self._body = body
        return body

    def release_body(self, body: Body) -> None:
        """Discard the rest of ``body`` (if its reader left it early) and stop tracking it."""
        body.discard()
        if self._body is body:
            self._body = None

    def sync(self) -> None:
        """Read and discard whatever replies earlier, abandoned commands are still owed."""
        if self._body is not None:
            self._body.discard()
            self._body = None
        while self._pending:
            pend = self._pending.popleft()
            pend.drained = True
            reply = self.read_reply()
            if reply.ok and pend.multiline:
                Body(self.wire, self.kill).discard()

    # error hygiene ----------------------------------------------------------------------
    def guarded(self, call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Run an I/O step; on any source error drop the session and scrub the error."""
        try:
            return call(*args, **kwargs)
        except SourceError as exc:
            self.kill()
            scrubbed = self.redact.scrubbed(exc)  # raised below: no __context__ keeps it
            if scrubbed is exc:
                raise
        raise scrubbed
