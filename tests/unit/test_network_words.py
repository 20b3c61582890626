"""Network failures said in words a person can act on."""

from __future__ import annotations

import errno
import socket

from mailhaul.domain.network_words import certificate_hint, connect_failure


def test_connect_failures():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert connect_failure("127.0.0.1", 12999, refused) == (
        "nothing is listening on 127.0.0.1:12999 (connection refused)"
    )
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert connect_failure("imap.nowhere.invalid", 993, lookup, resolver=True) == (
        "the host name imap.nowhere.invalid does not resolve (Name or service not known)"
    )
    other = OSError(errno.EPERM, "Operation not permitted")
    assert connect_failure("h", 1, other) == "cannot connect to h:1: Operation not permitted"


def test_certificate_hints():
    assert "give the CA file" in certificate_hint("self-signed certificate in certificate chain")
    assert "give the CA file" in certificate_hint("unable to get local issuer certificate")
    assert "host name" in certificate_hint("Hostname mismatch, certificate is not valid for 'x'")
    assert "renew" in certificate_hint("certificate has expired")
    assert certificate_hint("unsupported certificate purpose") == ""
