"""Commands sent into a running IMAP fetch, and what follows once they succeeded.

While a fetch streams bodies, ``mark_seen()`` and ``delete()`` pipeline their STOREs (and an
EXPUNGE to follow) into it instead of waiting for it to end; the fetch reads their
completions as they come. A refusal is logged and the message stays on the server; a BAD
is a protocol violation; a follow-up is sent only after every command it depends on
succeeded (RFC 3501 §5.5), with a fallback when the server refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailhaul.adapters.sources.imap.parser import Status
from mailhaul.domain.errors import ProtocolViolation

if TYPE_CHECKING:
    from mailhaul.adapters.sources.imap.session import ImapConnection

Fallback = tuple[list[bytes], Callable[[Status], None]]
"""Commands to send instead when a follow-up is refused, and whom to tell (with the refusal)."""


@dataclass
class _Group:
    """Commands sent into a running fetch, and what to send once they all succeeded."""

    what: str
    tags: set[str]
    then: list[bytes]
    failed: bool = False
    fallback: Fallback | None = None  # if these commands are refused
    then_fallback: Fallback | None = None  # if the ``then`` commands are refused
    fell_back: bool = False


class DeferredCommands:
    """The commands of one session sent into a running fetch, by tag."""

    def __init__(self, conn: ImapConnection) -> None:
        self._conn = conn
        self._groups: dict[str, _Group] = {}

    def __bool__(self) -> bool:
        """Whether a deferred command (or follow-up) has not completed yet."""
        return bool(self._groups)

    def completed(self, status: Status) -> None:
        """A tagged completion arrived: settle the deferred command it ends, if any."""
        group = self._groups.pop(status.tag or "", None)
        if group is not None:
            self._done(group, status)

    def send(
        self,
        commands: list[bytes],
        what: str,
        then: list[bytes] | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        """Send commands whose completions the running fetch will read.

        ``then`` is sent once all of ``commands`` succeeded, never earlier: RFC 3501 §5.5
        forbids pipelining a command whose outcome depends on another (an EXPUNGE after
        the STORE of \\Deleted; Dovecot really expunges nothing when they overlap).
        ``fallback`` (for the ``then`` commands): sent in their place if they are refused
        (a server that advertises UIDPLUS and rejects UID EXPUNGE).
        """
        group = _Group(what, set(), then or [], then_fallback=fallback)
        for tag in self._conn.send_commands(commands):
            group.tags.add(tag)
            self._groups[tag] = group

    def finish(self) -> None:
        """Read responses until every deferred command (and follow-up) has completed."""
        while self._groups:
            self._conn.read_response()

    def _send_then(self, group: _Group) -> None:
        follow = _Group(group.what, set(), [], fallback=group.then_fallback)
        for tag in self._conn.send_commands(group.then):
            follow.tags.add(tag)
            self._groups[tag] = follow

    def _done(self, group: _Group, status: Status) -> None:
        group.tags.discard(status.tag or "")
        if status.kind != "OK" and (group.fallback is not None or group.fell_back):
            if group.fallback is not None:  # once, however many of the commands fail
                commands, tell = group.fallback
                group.fallback, group.fell_back = None, True
                tell(status)
                self.send(commands, group.what)
            return
        if status.kind != "OK":
            group.failed = True
            text = self._conn.redact(status.text)
            if status.kind == "BAD":
                raise ProtocolViolation(f"server rejected {group.what} as malformed: {text}")
            self._conn.log(f"imap: server refused {group.what}: {text}")
        if not group.tags and group.then and not group.failed:
            self._send_then(group)
