""" "Test connection" against servers that flood or drip: it answers within its total
deadline, with bounded memory (it runs inside `serve`, for any host a user types)."""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest

from mailhaul.bootstrap import open_source
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from mailhaul.services.connection_check import ConnectionReport, check_connection
from support.hostile import HostileImap, HostilePop3, HostileServer, Misbehaviour

STEP = 1.0  # the timeout handed to the check: its total deadline is a few of these
BOUND = 15.0
MEMORY = 32 * 1024 * 1024


def spec_for(protocol: Protocol, port: int) -> AccountSpec:
    return AccountSpec(
        owner="ann@example.org",
        protocol=protocol,
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        username="user",
        options=RetrievalOptions(),
    )


def check_within(protocol: Protocol, server: HostileServer) -> tuple[ConnectionReport, int]:
    """The check's report and the peak of memory it allocated; fails if it outlives BOUND."""
    result: list[ConnectionReport] = []
    peak = [0]

    def run() -> None:
        tracemalloc.start()
        try:
            result.append(
                check_connection(spec_for(protocol, server.port), "pw", open_source, STEP)
            )
            peak[0] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    thread = threading.Thread(target=run)
    started = time.monotonic()
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"Test connection did not answer within {BOUND} s"
    assert time.monotonic() - started < BOUND
    return result[0], peak[0]


@pytest.mark.parametrize("at", ["LIST", "SELECT"])
def test_a_flooding_imap_server_gets_an_answer_in_bounded_time_and_memory(at: str) -> None:
    flood = Misbehaviour("flood", at, line=lambda i: b"* NO warning number %d\r\n" % i)
    with HostileImap(flood) as server:
        report, peak = check_within(Protocol.IMAP, server)
        assert server.misbehaved.is_set()
    assert not report.ok
    assert "gave up after" in report.message  # the command's deadline or the check's
    assert report.error_kind == "network"
    assert len(report.log) <= 201
    assert peak < MEMORY, f"the check allocated {peak} bytes at its peak"


@pytest.mark.parametrize("protocol", [Protocol.IMAP, Protocol.POP3])
def test_a_server_dripping_its_greeting_gets_an_answer_in_bounded_time(
    protocol: Protocol,
) -> None:
    hostile = HostileImap if protocol is Protocol.IMAP else HostilePop3
    with hostile(
        Misbehaviour(
            "drip",
            "greeting",
            start=b"* OK " if hostile is HostileImap else b"+OK ",
            drip_every=0.1,
        )
    ) as server:
        report, peak = check_within(protocol, server)
    assert not report.ok
    assert "gave up after" in report.message
    assert peak < MEMORY


def test_a_server_slow_in_every_answer_meets_the_total_deadline() -> None:
    """Each answer comes complete within its command's deadline (a byte every 20 ms); the
    whole check still ends at its total deadline (four steps)."""
    with HostileImap(Misbehaviour("slow", "greeting", drip_every=0.02)) as server:
        report, _ = check_within(Protocol.IMAP, server)
    assert not report.ok
    assert f"gave up after {4 * STEP:g} s, the time limit of the whole run" in report.message


def test_a_well_behaved_server_passes_the_check() -> None:
    """The positive control: the same server, behaving."""
    with HostileImap(Misbehaviour("silence", "NEVER")) as server:
        report, _ = check_within(Protocol.IMAP, server)
    assert report.ok, report.message
    assert report.folders == {"INBOX": 1}
