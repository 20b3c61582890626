"""A push watcher's connection as ``open_idle`` hands it over: idling on the folder, and
with TCP keepalive on its socket, so that a server gone without a word (a host down, a NAT
mapping dropped) ends the link within minutes rather than at the next DONE round trip."""

from __future__ import annotations

import socket

from mailhaul.adapters.sources.imap.idle import KEEPALIVE, open_idle
from mailhaul.domain.options import Credentials, Protocol, Security, SourceEndpoint
from support.scripted_imap import ImapScript, Mailbox, ScriptedImapServer
from support.waiting import wait_for


def test_the_watch_socket_has_tcp_keepalive():
    script = ImapScript(folders={"INBOX": Mailbox(7, [])})
    with ScriptedImapServer(script) as server:
        endpoint = SourceEndpoint(Protocol.IMAP, "127.0.0.1", server.port, Security.NONE, timeout=5)
        link = open_idle(endpoint, Credentials("user", "secret"), lambda line: None)
        try:
            assert wait_for(lambda: len(server.idlers) == 1)
            watch = socket.socket(fileno=socket.dup(link.fileno()))  # the same socket
            plain = socket.create_connection(("127.0.0.1", server.port))  # the control
            with watch, plain:
                assert plain.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
                assert watch.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                for name, value in KEEPALIVE:
                    assert watch.getsockopt(socket.IPPROTO_TCP, getattr(socket, name)) == value
        finally:
            link.close()
