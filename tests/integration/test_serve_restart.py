"""A `serve` SIGKILLed mid-poll and started again polls the killed one's accounts at once.

The lease a dead process on this host held is taken over without waiting out its TTL (300 s
here): the restarted `serve` sees the holder's pid is gone.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, RetrievalOptions, Security
from support.mailhaul_home import Home
from support.processes import ServeProcess
from support.scripted_pop3 import Fault, Pop3Script, ScriptedPop3Server
from support.waiting import wait_for

MESSAGE = b"Subject: after the restart\r\n\r\nbody\r\n"
TAKE_OVER_WITHIN = 20.0  # seconds; the lease TTL is 300


def test_restarted_serve_polls_the_killed_serves_accounts_at_once(
    tmp_path: Path, database_url: str
):
    toml = (
        f'[database]\nurl = "{database_url}"\n'
        "[poll]\nlease_ttl = 300\ntimeout = 120\ninterval = 3600\n"
    )
    home = Home.create(tmp_path / "home", toml=toml)
    # The first session hangs after the greeting's connect: the first serve is mid-poll,
    # holding the lease, when it is killed. Later sessions are served normally.
    script = Pop3Script(messages=[MESSAGE], faults=[Fault("GREETING", "hang", session=0)])
    with ScriptedPop3Server(script) as server:
        spec = AccountSpec(
            owner="owner@local.test",
            protocol=Protocol.POP3,
            host=server.host,
            port=server.port,
            security=Security.NONE,
            username="alice",
            options=RetrievalOptions(),
            interval=3600,
        )
        home.app.accounts.add(spec, "s3cret")
        first = ServeProcess(home.app.settings.home).start()
        assert first.proc is not None
        try:
            assert wait_for(lambda: server.sessions >= 1, 30), "the first serve never polled"
        finally:
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait()
        assert server.sessions == 1 and server.mailbox, "the first serve finished its poll"
        killed_at = time.monotonic()
        with ServeProcess(home.app.settings.home) as second:
            taken_over = wait_for(lambda: not server.mailbox, TAKE_OVER_WITHIN)
            waited = time.monotonic() - killed_at
        assert taken_over, f"not polled within {TAKE_OVER_WITHIN:g}s:\n{second.log}"
        assert waited < TAKE_OVER_WITHIN
    assert server.errors == []
    delivered = list((home.app.settings.home / "mail").glob("*/*/new/*"))
    assert [b"after the restart" in path.read_bytes() for path in delivered] == [True]
    home.app.db.dispose()
