"""Pipelined, streaming retrieval of whole messages and of header sections over IMAP.

Bodies: one ``UID FETCH <uid> BODY.PEEK[]`` command per message, up to
``WINDOW_MESSAGES`` commands (and about ``WINDOW_BYTES`` of listed message sizes) in
flight, topped up in batches whenever half of the window has been answered. Each body
literal is handed out as a ``BodyStream`` reading at most ``CHUNK_SIZE`` bytes at a time
from the socket, so memory does not grow with message size. Messages are yielded in the
order the server sends them (for every server we know, the order of ``refs``); each
requested message at most once. A message whose command completes without a body
(expunged by another client) is skipped with a log line.

Which message a body belongs to: the ``UID`` item if it precedes the body, else the UID
the session recorded for the message number, else the oldest command still waiting. In
every case the ``BodyStream`` ends only after the whole FETCH response is read and its
``UID`` item agrees; otherwise it raises ``MessageMismatch`` instead of ending, so a
consumer that commits after the last chunk never stores a misattributed message. Only a
``UID`` item confirms: a server must send one in every FETCH response to a UID command
(RFC 3501 §6.4.8), and a sequence number alone can be wrong. The whole response has been
read by then, so the session stays in step and the next message can follow.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator, Sequence

from mailhaul.adapters.sources.imap.commands import compress_uids
from mailhaul.adapters.sources.imap.parser import (
    BODY_ITEMS,
    HEADER_ITEMS,
    Continuation,
    Fetch,
    Status,
    Streamed,
)
from mailhaul.adapters.sources.imap.session import CHUNK_SIZE, BodyStart, ImapConnection
from mailhaul.domain.errors import MessageMismatch, ProtocolViolation, TransientSourceError
from mailhaul.domain.messages import MessageRef
from mailhaul.domain.ports import LogFn

WINDOW_MESSAGES = 50
WINDOW_BYTES = 8 * 1024 * 1024
MAX_HEADER_LITERAL = 8 * 1024 * 1024


class BodyStream:
    """The chunks of one message literal; see the module docstring for when it ends."""

    def __init__(self, conn: ImapConnection, start: BodyStart, ref: MessageRef | None) -> None:
        self._conn = conn
        self._start = start
        self._ref = ref
        self._remaining = start.size
        self._state = "streaming"  # → "done" | "drained" | "interrupted"

    @property
    def ref(self) -> MessageRef | None:
        """The message this body belongs to (None: an unasked body being skipped)."""
        return self._ref

    def __iter__(self) -> BodyStream:
        return self

    def __next__(self) -> bytes:
        if self._state == "done":
            raise StopIteration
        if self._state != "streaming":
            raise TransientSourceError(
                f"the message stream was {self._state} before it was read to its end"
            )
        if self._remaining > 0:
            with self._conn.guard():
                chunk = self._conn.wire.read_some(min(self._remaining, CHUNK_SIZE))
            self._remaining -= len(chunk)
            return chunk
        self._state = "done"
        wrong = self._complete()
        if wrong is not None:
            raise MessageMismatch(wrong)
        raise StopIteration

    def drain(self) -> None:
        """Skip whatever the consumer did not read (it abandoned the stream)."""
        if self._state == "streaming":
            self._state = "drained"
            self._complete()

    def interrupt(self) -> None:
        """Called when another command must run: drain, and fail later reads."""
        if self._state == "streaming":
            self._state = "interrupted"
            self._complete()

    def _complete(self) -> str | None:
        """Read the rest of the response; what is wrong with the body's UID, if anything."""
        conn = self._conn
        if conn.active_stream is self:
            conn.active_stream = None
        with conn.guard():
            conn.skip(self._remaining)
            self._remaining = 0
            assembler = self._start.assembler
            assembler.feed_literal(Streamed(self._start.size))
            assembler.feed_line(conn.wire.readline())
            response = conn.continue_response(assembler)
            if not isinstance(response, Fetch):
                raise ProtocolViolation("internal: a FETCH response turned into something else")
            uid = response.uid()
        if self._ref is None:
            return None
        if uid is None:
            return f"server sent a message body without saying its UID (expected {self._ref.uid})"
        if uid != self._ref.number:
            return f"server sent the body of UID {uid} where UID {self._ref.uid} was expected"
        return None


def fetch_bodies(
    conn: ImapConnection, refs: Sequence[MessageRef], log: LogFn
) -> Iterator[tuple[MessageRef, Iterator[bytes]]]:
    """Pipelined ``UID FETCH <uid> BODY.PEEK[]``; see the module docstring."""
    conn.drain()
    conn.fetch_active = True
    wanted: dict[int, MessageRef] = {}
    for ref in refs:
        wanted.setdefault(ref.number, ref)
    queue = deque(wanted.values())
    inflight: dict[str, MessageRef] = {}
    inflight_bytes = 0
    generation = conn.generation
    while queue or inflight:
        if conn.generation != generation:
            log(f"imap: fetch cut short by another command; {len(wanted)} message(s) left")
            return
        commands: list[MessageRef] = []
        low = len(inflight) <= WINDOW_MESSAGES // 2 and inflight_bytes <= WINDOW_BYTES // 2
        while queue and (
            not (inflight or commands)
            or (
                low
                and len(inflight) + len(commands) < WINDOW_MESSAGES
                and inflight_bytes < WINDOW_BYTES
            )
        ):
            ref = queue.popleft()
            commands.append(ref)
            inflight_bytes += ref.size
        if commands:
            tags = conn.send_commands(
                [f"UID FETCH {ref.number} BODY.PEEK[]".encode("ascii") for ref in commands]
            )
            inflight.update(zip(tags, commands, strict=True))
        response = conn.read_response(stream_bodies=True)
        if isinstance(response, BodyStart):
            stream = _claim_body(conn, response, wanted, inflight, log)
            if stream is not None:
                conn.active_stream = stream
                assert stream.ref is not None
                yield stream.ref, stream
                stream.drain()
        elif isinstance(response, Status) and response.tag is not None:
            done = inflight.pop(response.tag, None)
            if done is None:
                continue
            inflight_bytes -= done.size
            if response.kind == "BAD":
                raise _fail(conn, f"server rejected UID FETCH {done.uid}: {response.text}")
            if wanted.pop(done.number, None) is not None:
                log(
                    f"imap: message UID {done.uid} is no longer on the server (expunged by"
                    f" another client?); skipped: {response.kind} {conn.redact(response.text)}"
                )
        elif isinstance(response, Fetch):
            pair = _inline_body(conn, response, wanted, log)
            if pair is not None:
                yield pair
        elif isinstance(response, Continuation):
            raise _fail(conn, "server sent an unexpected continuation request")
    conn.deferred.finish()
    conn.fetch_active = False


def _fail(conn: ImapConnection, message: str) -> ProtocolViolation:
    exc = ProtocolViolation(conn.redact(message))
    conn.fail(exc)
    return exc


def _claim_body(
    conn: ImapConnection,
    start: BodyStart,
    wanted: dict[int, MessageRef],
    inflight: dict[str, MessageRef],
    log: LogFn,
) -> BodyStream | None:
    """Decide which requested message a body literal belongs to, or skip it."""
    with conn.guard():
        uid = Fetch(start.assembler.number or 0, start.assembler.partial_items()).uid()
    if uid is None and start.assembler.number is not None:
        uid = conn.numbers.uid_at(start.assembler.number)  # a guess, until the UID item confirms it
    if uid is None:
        uid = next((ref.number for ref in inflight.values() if ref.number in wanted), None)
    ref = wanted.pop(uid, None) if uid is not None else None
    if ref is None:
        log(f"imap: skipping a message body the server sent unasked (UID {uid})")
        BodyStream(conn, start, None).drain()
        return None
    return BodyStream(conn, start, ref)


def _inline_body(
    conn: ImapConnection, response: Fetch, wanted: dict[int, MessageRef], log: LogFn
) -> tuple[MessageRef, Iterator[bytes]] | None:
    """A body sent as a quoted string or NIL (odd servers), or None for other data."""
    found = response.section(*BODY_ITEMS)
    if found is None:
        return None
    uid = response.uid()
    ref = wanted.get(uid) if uid is not None else None
    if ref is None:
        log(f"imap: ignoring a message body the server sent without a UID asked for ({uid})")
        return None
    del wanted[ref.number]
    value = found[1]
    if isinstance(value, bytes):
        return ref, iter([value])
    if value is None:
        log(f"imap: server has no content for message UID {ref.uid} (NIL); skipped")
        return None
    raise _fail(conn, f"server sent {found[0]} of unexpected type for UID {ref.uid}")


def fetch_headers(
    conn: ImapConnection, refs: Sequence[MessageRef], log: LogFn
) -> Iterator[tuple[MessageRef, bytes]]:
    """``UID FETCH <set> (UID RFC822.SIZE BODY.PEEK[HEADER])``, in the order the server sends.

    A ref listed without its size (size 0: known UIDs listed by SEARCH) comes back with the
    size the server gives now, which a fingerprint needs.
    """
    conn.drain()
    conn.fetch_active = True
    wanted = {ref.number: ref for ref in refs}
    for uid_set in compress_uids(wanted):
        command = f"UID FETCH {uid_set} (UID RFC822.SIZE BODY.PEEK[HEADER])"
        (tag,) = conn.send_commands([command.encode()])
        generation = conn.generation
        while True:
            if conn.generation != generation:
                log("imap: header fetch cut short by another command")
                return
            response = conn.read_response(literal_budget=MAX_HEADER_LITERAL)
            if isinstance(response, Status) and response.tag == tag:
                if response.kind == "BAD":
                    raise _fail(conn, f"server rejected the header fetch: {response.text}")
                if response.kind == "NO":
                    log(f"imap: header fetch partly refused: {conn.redact(response.text)}")
                break
            if isinstance(response, Continuation):
                raise _fail(conn, "server sent an unexpected continuation request")
            if not isinstance(response, Fetch):
                continue
            found = response.section(*HEADER_ITEMS)
            if found is None:
                continue
            uid = response.uid()
            ref = wanted.pop(uid, None) if uid is not None else None
            if ref is not None and isinstance(found[1], bytes):
                size = response.size()
                if not ref.size and size is not None:
                    ref = dataclasses.replace(ref, size=size)
                yield ref, found[1]
    conn.deferred.finish()
    conn.fetch_active = False
    if wanted:
        log(f"imap: server sent no header for {len(wanted)} message(s); they were skipped")
