"""An IDLE connection as the watcher's event loop reads it, over a real socket pair: what
counts as new mail, what is only a change, how the keepalive round trip and a polite leave
go on the wire, and what ends the connection. Nothing here blocks."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mailhaul.adapters.sources.imap.idle_link import MAX_LINE, IdleLink, Phase, leave_all
from mailhaul.domain.redaction import Redactor
from mailhaul.services.push_watch import MAX_BACKOFF, backoff


@pytest.fixture
def pair() -> Iterator[tuple[IdleLink, socket.socket]]:
    ours, server = socket.socketpair()
    link = IdleLink(ours, b"", exists=3, tag="M4", redact=Redactor())
    server.settimeout(2.0)
    yield link, server
    link.close()
    server.close()


def phase(link: IdleLink) -> Phase:
    return link.phase  # read afresh (the type checker would keep the last one it saw)


def said(server: socket.socket) -> bytes:
    return server.recv(65536)


def test_only_mail_beyond_the_known_count_is_new(pair: tuple[IdleLink, socket.socket]):
    link, server = pair
    server.sendall(b"* 3 EXISTS\r\n* 2 FETCH (FLAGS (\\Seen))\r\n")
    heard = link.read()
    assert (heard.new_mail, heard.changes, heard.closed) == (False, 2, None)
    server.sendall(b"* 1 EXPUNGE\r\n* 3 EXISTS\r\n")  # 3 -> 2 -> 3: one arrived
    heard = link.read()
    assert heard.new_mail and heard.changes == 2 and link.exists == 3
    server.sendall(b"* 1 RECENT\r\n")
    assert link.read().new_mail


def test_nothing_to_read_returns_at_once(pair: tuple[IdleLink, socket.socket]):
    link, _server = pair
    heard = link.read()
    assert (heard.new_mail, heard.changes, heard.closed) == (False, 0, None)


def test_bytes_from_the_hand_over_are_read_first():
    ours, server = socket.socketpair()
    link = IdleLink(ours, b"* 4 EXISTS\r\n", exists=3, tag="M4", redact=Redactor())
    assert link.read().new_mail
    link.close()
    server.close()


def test_a_split_line_and_a_literal_are_handled(pair: tuple[IdleLink, socket.socket]):
    link, server = pair
    server.sendall(b"* 2 FETCH (BODY[HEADER] {12}\r\n* 9 EXISTS\r\n)\r\n* 4 EX")
    heard = link.read()
    assert not heard.new_mail  # the literal's "* 9 EXISTS" is data, not a response
    server.sendall(b"ISTS\r\n")
    assert link.read().new_mail and link.exists == 4


def test_the_keepalive_round_trip(pair: tuple[IdleLink, socket.socket]):
    link, server = pair
    link.end_idle()
    assert said(server) == b"DONE\r\n" and phase(link) is Phase.ENDING
    server.sendall(b"M4 OK Idle completed\r\n")
    heard = link.read()
    assert not heard.idling and phase(link) is Phase.STARTING
    assert said(server) == b"W1 IDLE\r\n"
    server.sendall(b"+ idling\r\n")
    assert link.read().idling and phase(link) is Phase.IDLING


def test_mail_first_reported_on_the_keepalive_is_new_mail(pair: tuple[IdleLink, socket.socket]):
    # Dovecot 2.3 does not report mail that lands just before it hibernates a session; the
    # keepalive's DONE brings the EXISTS (bench/README.md), and that must ask for a poll.
    link, server = pair
    link.end_idle()
    said(server)
    server.sendall(b"M4 OK Idle completed\r\n")
    assert not link.read().new_mail  # the control: a round trip with nothing new
    said(server)
    server.sendall(b"+ idling\r\n")
    link.read()
    link.end_idle()
    said(server)
    server.sendall(b"* 4 EXISTS\r\nW1 OK Idle completed\r\n")
    heard = link.read()
    assert heard.new_mail and link.exists == 4 and phase(link) is Phase.STARTING


def test_bye_a_refused_idle_an_end_of_file_and_a_long_line_end_it(
    pair: tuple[IdleLink, socket.socket],
):
    link, server = pair
    server.sendall(b"* BYE [UNAVAILABLE] shutting down\r\n")
    assert link.read().closed == "the server ended the session: [UNAVAILABLE] shutting down"
    ours, other = socket.socketpair()
    refused = IdleLink(ours, b"", 0, "M4", Redactor())
    refused.end_idle()
    other.sendall(b"M4 NO [LIMIT] too many\r\n")
    assert refused.read().closed == "the server refused IDLE: [LIMIT] too many"
    assert other.recv(100) == b"DONE\r\n"
    other.close()
    assert refused.read().closed == "the server closed the connection"
    refused.close()
    ours, other = socket.socketpair()
    flooded = IdleLink(ours, b"", 0, "M4", Redactor())
    other.sendall(b"* " + b"x" * (MAX_LINE + 10))
    heard = flooded.read()
    while heard.closed is None:
        heard = flooded.read()
    assert "over 65536 bytes" in heard.closed
    flooded.close()
    other.close()


def test_leaving_says_done_and_logout(pair: tuple[IdleLink, socket.socket]):
    link, server = pair
    server.sendall(b"")
    leave_all([link], wait=0.2)  # the server says nothing: given up after the wait
    assert said(server) == b"DONE\r\nW1 LOGOUT\r\n"


def test_backoff_doubles_to_a_cap_with_jitter():
    import random

    rng = random.Random(7)
    first = [backoff(1, rng) for _ in range(50)]
    assert all(1.0 <= x <= 2.0 for x in first) and len(set(first)) > 40  # jitter
    assert all(MAX_BACKOFF / 2 <= backoff(30, rng) <= MAX_BACKOFF for _ in range(50))
    assert backoff(3, rng) <= 8.0
