"""The same fault gives the same error leaf (and metrics kind) over POP3 and over IMAP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from mailhaul.adapters.sources.imap.source import ImapSource
from mailhaul.adapters.sources.pop3.source import Pop3Source
from mailhaul.domain.errors import (
    AuthenticationFailed,
    ErrorKind,
    LoginDeferred,
    SessionRefused,
    SourceError,
    error_kind,
)
from mailhaul.domain.options import Credentials, Protocol, Security, SourceEndpoint
from mailhaul.domain.ports import MailSource
from support.scripted_imap import ImapScript, ScriptedImapServer
from support.scripted_pop3 import Pop3Script, ScriptedPop3Server

Fault = str
"""'greeting' (the session is turned away), 'busy' (login refused for now), 'wrong'."""

POP3_FAULTS = {
    "greeting": Pop3Script(greeting="-ERR [SYS/TEMP] too many connections, try later"),
    "busy": Pop3Script(login_error="[IN-USE] mailbox locked by another session"),
    "wrong": Pop3Script(login_error="[AUTH] invalid credentials"),
}
IMAP_FAULTS = {
    "greeting": ImapScript(greeting=b"* BYE too many connections, try later\r\n"),
    "busy": ImapScript(login_failure=b"NO [INUSE] mailbox locked by another session"),
    "wrong": ImapScript(),
}


@contextmanager
def pop3_source(fault: Fault, password: str) -> Iterator[MailSource]:
    script = POP3_FAULTS[fault]
    with ScriptedPop3Server(script) as server:
        yield Pop3Source(server.endpoint(), Credentials(script.username, password), print)


@contextmanager
def imap_source(fault: Fault, password: str) -> Iterator[MailSource]:
    script = IMAP_FAULTS[fault]
    with ScriptedImapServer(script) as server:
        endpoint = SourceEndpoint(Protocol.IMAP, "127.0.0.1", server.port, Security.NONE)
        yield ImapSource(endpoint, Credentials(script.username, password), print)


def caught(open_source: Callable[[Fault, str], object], fault: Fault, password: str) -> SourceError:
    with open_source(fault, password) as source:  # type: ignore[attr-defined]
        with pytest.raises(SourceError) as raised:
            source.connect()
        source.abort()
    return raised.value


@pytest.mark.parametrize(
    ("fault", "leaf", "kind"),
    [
        ("greeting", SessionRefused, ErrorKind.NETWORK),
        ("busy", LoginDeferred, ErrorKind.NETWORK),
        ("wrong", AuthenticationFailed, ErrorKind.AUTH),
    ],
)
def test_one_fault_one_leaf_in_both_protocols(
    fault: Fault, leaf: type[SourceError], kind: ErrorKind
) -> None:
    # the scripted IMAP server answers its login_failure to a wrong password only
    pop3 = caught(pop3_source, fault, "wrong" if fault == "wrong" else POP3_FAULTS[fault].password)
    imap = caught(imap_source, fault, "wrong" if fault != "greeting" else "secret")
    assert type(pop3) is leaf, pop3
    assert type(imap) is leaf, imap
    assert error_kind(pop3) is error_kind(imap) is kind
