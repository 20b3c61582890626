"""The IMAP command/response layer: tags, bounded response reading, mailbox bookkeeping.

``ImapConnection`` sends tagged commands over a ``Wire`` and reads responses with a
line limit and a byte budget for the literals of one response, so that a hostile server
cannot make us allocate without limit. Message bodies are never read into memory: either
handed to the caller to stream (``BodyStart``) or skipped. Untagged ``EXISTS``,
``EXPUNGE``, ``FETCH``, ``CAPABILITY`` and ``BYE`` keep its state (message count, which
UID each sequence number holds) current, whatever command they arrive with.

No command can hold the session for ever: besides the ``Wire``'s time bounds, at most
``MAX_IDLE_UNTAGGED`` untagged responses (or ``MAX_IDLE_BYTES``) may arrive between two
signs of progress (a command sent or completed, a listing line the caller found useful:
``useful()``), and the server's warnings are logged ``MAX_WARNINGS`` times per command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from mailhaul.adapters.sources.imap.deferred import DeferredCommands
from mailhaul.adapters.sources.imap.numbers import MessageNumbers
from mailhaul.adapters.sources.imap.parser import (
    BODY_ITEMS,
    Continuation,
    Fetch,
    Response,
    ResponseAssembler,
    Status,
    Streamed,
    Untagged,
    show,
)
from mailhaul.adapters.sources.wire import Wire
from mailhaul.domain.errors import (
    ProtocolViolation,
    ServerStalled,
    SessionRefused,
    SourceError,
    TransientSourceError,
)
from mailhaul.domain.ports import LogFn
from mailhaul.domain.redaction import Redactor

MAX_LINE = 64 * 1024
MAX_LISTING_LINE = 1024 * 1024
MAX_LITERAL = 1024 * 1024
CHUNK_SIZE = 256 * 1024
MAX_IDLE_UNTAGGED = 100_000
"""Untagged responses accepted between two signs of progress."""
MAX_IDLE_BYTES = 16 * 1024 * 1024
"""Bytes of untagged responses accepted between two signs of progress."""
TRANSIENT_CODES = frozenset({"UNAVAILABLE", "INUSE", "SERVERBUG", "LIMIT", "OVERQUOTA"})
"""Response codes (RFC 5530) that mean "try again later" rather than "you are wrong"."""
MAX_WARNINGS = 10
"""Untagged NO/BAD warnings logged per command; the rest are counted."""


@dataclass(frozen=True)
class BodyStart:
    """A FETCH response stopped before a message-body literal the caller must stream."""

    assembler: ResponseAssembler
    item: str
    size: int


class Interruptible(Protocol):
    """A body stream that another command can cut short (it drains the literal)."""

    def interrupt(self) -> None:
        """Drain the rest of the response; later reads of the stream fail."""
        ...


class ImapConnection:
    """One IMAP session's command/response plumbing (no policy: see ``ImapSource``)."""

    def __init__(self, wire: Wire, log: LogFn, redact: Redactor) -> None:
        self.wire = wire
        self.log = log
        self.redact = redact
        self._counter = 0
        self.pending: dict[str, str] = {}
        """Tags sent and not yet completed, with their command names."""
        self.failure: SourceError | None = None
        self.server_caps: frozenset[str] | None = None
        self.numbers = MessageNumbers()
        """The selected folder's message count and the UIDs of its message numbers."""
        self.generation = 0
        """Bumped whenever ``drain()`` cuts short an operation still reading responses."""
        self.active_stream: Interruptible | None = None
        self.fetch_active = False
        """A fetch generator is running: flag changes are pipelined into it, not waited for."""
        self.deferred = DeferredCommands(self)
        """Commands sent during a fetch, checked when their completion arrives."""
        self.logging_out = False
        self.greeted = False
        """The greeting was read: a ``BYE`` from now on ends a session, not refuses one."""
        self._idle_untagged = 0  # untagged responses since the last progress
        self._idle_mark = 0  # wire.received at the last progress
        self._warnings = 0  # server warnings since the last completed command

    # failure handling -------------------------------------------------------------------
    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Any source error inside leaves the session unusable: remember it, drop the socket."""
        self.check_usable()
        try:
            yield
        except SourceError as exc:
            redacted = self.redact.scrubbed(exc)  # server bytes quoted in it may hold the password
            self.fail(redacted)
            if redacted is exc:
                raise
            raise redacted from None

    def fail(self, exc: SourceError) -> None:
        """Mark the session broken and close the socket."""
        if self.failure is None:
            self.failure = exc
        self.wire.abort()

    def check_usable(self) -> None:
        """Raise if an earlier error broke the session."""
        if self.failure is not None:
            raise TransientSourceError(f"the IMAP session failed earlier: {self.failure}")
        if not self.wire.is_open:
            raise TransientSourceError("the IMAP connection is closed")

    # sending ----------------------------------------------------------------------------
    def new_command(self, name: str) -> str:
        """A fresh tag for a command about to be sent, registered as in flight."""
        self._counter += 1
        tag = f"M{self._counter}"
        self.pending[tag] = name
        return tag

    def send_commands(self, commands: list[bytes]) -> list[str]:
        """Send several commands (without tags or CRLF) in one write; returns their tags."""
        lines: list[bytes] = []
        tags: list[str] = []
        for command in commands:
            words = command.decode("ascii", "replace").split(" ", 2)
            tag = self.new_command(" ".join(words[:2]) if words[0] == "UID" else words[0])
            tags.append(tag)
            lines.append(tag.encode("ascii") + b" " + command + b"\r\n")
        with self.guard():
            self.wire.send(b"".join(lines))
        self.useful()
        return tags

    def send_raw(self, data: bytes) -> None:
        """Send bytes that continue a command (literal data, SASL responses)."""
        with self.guard():
            self.wire.send(data)
        self.useful()

    def command(
        self,
        command: bytes,
        on_data: Callable[[Response], None] | None = None,
        line_limit: int = MAX_LINE,
    ) -> Status:
        """Send one command and read up to its tagged completion."""
        (tag,) = self.send_commands([command])
        return self.wait(tag, on_data, line_limit)

    # receiving --------------------------------------------------------------------------
    def wait(
        self,
        tag: str,
        on_data: Callable[[Response], None] | None = None,
        line_limit: int = MAX_LINE,
    ) -> Status:
        """Read responses until ``tag`` completes; untagged data goes to ``on_data``."""
        return self.wait_all([tag], on_data, line_limit)[tag]

    def wait_all(
        self,
        tags: list[str],
        on_data: Callable[[Response], None] | None = None,
        line_limit: int = MAX_LINE,
    ) -> dict[str, Status]:
        """Read responses until every one of ``tags`` has completed, in whatever order."""
        done: dict[str, Status] = {}
        while len(done) < len(tags):
            response = self._next(line_limit, on_data, allow_continuation=False)
            if isinstance(response, Status) and response.tag in tags:
                done[response.tag] = response
        return done

    def wait_continuation(self, tag: str) -> Status | Continuation:
        """Read responses until a ``+`` continuation request or ``tag``'s completion."""
        while True:
            response = self._next(MAX_LINE, None, allow_continuation=True)
            if isinstance(response, Continuation) or response.tag == tag:
                return response

    def _next(
        self,
        line_limit: int,
        on_data: Callable[[Response], None] | None,
        allow_continuation: bool,
    ) -> Status | Continuation:
        """The next tagged completion (or continuation), passing untagged data on."""
        self.wire.begin_attending()  # handling what the server sends is its time too
        try:
            while True:
                response = self.read_response(line_limit=line_limit)
                assert not isinstance(response, BodyStart)
                if isinstance(response, Status) and response.tag is not None:
                    return response
                if isinstance(response, Continuation):
                    if allow_continuation:
                        return response
                    raise self.violation("server sent an unexpected continuation request")
                if on_data is not None:
                    with self.guard():
                        on_data(response)
        finally:
            self.wire.end_attending()

    def read_response(
        self,
        *,
        stream_bodies: bool = False,
        line_limit: int = MAX_LINE,
        literal_budget: int = MAX_LITERAL,
    ) -> Response | BodyStart:
        """Read one response; with ``stream_bodies`` stop at a message-body literal."""
        wire = self.wire
        wire.begin_attending()
        try:
            with self.guard():
                assembler = ResponseAssembler(wire.readline(line_limit))
                response = self.continue_response(
                    assembler, stream_bodies, line_limit, literal_budget
                )
                if isinstance(response, Continuation):
                    self.progress()
                elif not isinstance(response, Status) or response.tag is None:
                    self._count_untagged()  # a body counts too: its completion is progress
                return response
        finally:
            wire.end_attending()

    def useful(self) -> None:
        """The server sent what a command asked for: its untagged allowance starts again."""
        self._idle_untagged = 0
        self._idle_mark = self.wire.received

    def progress(self) -> None:
        """A command was answered: the server's time and untagged allowance start again."""
        self.wire.progress()
        self.useful()
        self._warnings = 0

    def _count_untagged(self) -> None:
        self._idle_untagged += 1
        size = self.wire.received - self._idle_mark
        if self._idle_untagged > MAX_IDLE_UNTAGGED or size > MAX_IDLE_BYTES:
            what = (
                f"{self._idle_untagged} responses"
                if self._idle_untagged > MAX_IDLE_UNTAGGED
                else f"{size // (1024 * 1024)} MiB"
            )
            raise ServerStalled(
                f"the server kept sending without answering the command; gave up after {what}"
                " that answered nothing"
            )

    def continue_response(
        self,
        assembler: ResponseAssembler,
        stream_bodies: bool = False,
        line_limit: int = MAX_LINE,
        literal_budget: int = MAX_LITERAL,
    ) -> Response | BodyStart:
        """Read the rest of a response whose first line(s) ``assembler`` already has."""
        with self.guard():
            while (size := assembler.literal_needed) is not None:
                item = assembler.pending_item()
                if item in BODY_ITEMS:
                    if stream_bodies:
                        return BodyStart(assembler, item, size)
                    self.skip(size)
                    assembler.feed_literal(Streamed(size))
                else:
                    if size > literal_budget:
                        raise ProtocolViolation(
                            f"server announced a literal of {size} bytes"
                            f" for {item or 'a response item'}, over the limit of"
                            f" {literal_budget} bytes"
                        )
                    literal_budget -= size
                    assembler.feed_literal(self.read_exact(size))
                line = self.wire.readline(line_limit)
                literal_budget -= len(line)
                assembler.feed_line(line)
            return self._accept(assembler.result())

    def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes (a bounded, non-body literal)."""
        data = bytearray()
        while len(data) < size:
            data += self.wire.read_bytes(size - len(data))
        return bytes(data)

    def skip(self, size: int) -> None:
        """Read and discard ``size`` bytes (a message literal nobody wants)."""
        remaining = size
        while remaining > 0:
            remaining -= len(self.wire.read_bytes(min(remaining, CHUNK_SIZE)))

    def drain(self) -> None:
        """Finish every command still in flight (an abandoned fetch), discarding its data."""
        if self.active_stream is not None:
            self.active_stream.interrupt()
            self.active_stream = None
        if self.pending or self.fetch_active:
            self.generation += 1
        while self.pending:
            self.read_response()
        self.fetch_active = False

    # bookkeeping ------------------------------------------------------------------------
    def violation(self, message: str) -> ProtocolViolation:
        """A ``ProtocolViolation`` that also leaves the session unusable (it is out of step)."""
        exc = ProtocolViolation(message)
        self.fail(exc)
        return exc

    def check(self, status: Status, what: str) -> None:
        """Raise unless ``status`` is OK: NO is temporary, BAD a protocol violation."""
        if status.kind == "OK":
            return
        text = self.redact(status.text)
        if status.kind == "NO":
            raise TransientSourceError(f"server refused {what}: {text}")
        raise self.violation(f"server rejected {what} as malformed: {text}")

    def _accept(self, response: Response) -> Response:
        if isinstance(response, Status) and response.tag is not None:
            if self.pending.pop(response.tag, None) is None:
                raise ProtocolViolation(
                    f"server answered with unknown tag {response.tag!r}: "
                    f"{show(self.redact(response.text).encode())}"
                )
            self.progress()
            self.deferred.completed(response)
            return response
        self.note(response)
        return response

    def note(self, response: Response) -> None:
        """Update the session state from untagged data."""
        if isinstance(response, Fetch):
            self.numbers.note_uid(response.seq, response.uid())
        elif isinstance(response, Untagged):
            if response.name == "EXISTS" and response.number is not None:
                self.numbers.note_exists(response.number)
            elif response.name == "EXPUNGE" and response.number is not None:
                self.numbers.note_expunge(response.number)
            elif response.name == "CAPABILITY":
                self.server_caps = caps_from(response.values)
        elif isinstance(response, Status):
            if response.code == "CAPABILITY":
                self.server_caps = caps_from(response.code_args)
            if response.kind == "BYE" and not self.greeted:
                raise SessionRefused(
                    f"{self.wire.endpoint.describe()} refused the session:"
                    f" {self.redact(response.text)}"
                )
            if response.kind == "BYE" and not self.logging_out:
                raise TransientSourceError(
                    f"server ended the session: {self.redact(response.text)}"
                )
            if response.kind in ("NO", "BAD"):
                self._warnings += 1
                if self._warnings <= MAX_WARNINGS:
                    self.log(f"imap: server warning: {self.redact(response.text)}")
                if self._warnings == MAX_WARNINGS:
                    self.log("imap: more server warnings for this command are not logged")


def caps_from(values: tuple[object, ...] | list[object]) -> frozenset[str]:
    """Capability atoms as an upper-case set."""
    return frozenset(str(value).upper() for value in values if isinstance(value, str | int))
