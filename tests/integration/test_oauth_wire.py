"""Signing in with an OAuth2 access token, byte for byte, against scripted servers that play
Gmail (XOAUTH2 and its error challenge) and Microsoft 365 (POP3's two-step AUTH XOAUTH2):
the mechanism chosen by the capabilities, SASL-IR and not, the challenge answered as each
mechanism requires, and the token in no log line or error."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from mailhaul.adapters.sources.imap.source import ImapSource
from mailhaul.adapters.sources.pop3.source import Pop3Source
from mailhaul.domain.errors import AuthenticationFailed, TokenRejected
from mailhaul.domain.options import Credentials, Protocol, Security, SignInMethod, SourceEndpoint
from support.scripted_imap import ImapScript, ScriptedImapServer
from support.scripted_pop3 import Pop3Script, ScriptedPop3Server

USER = "me@gmail.example"
TOKEN = "ya29.a0Af-good-access-token"
WRONG = "ya29.a0Af-expired-access-token"


def oauth(token: str = TOKEN) -> Credentials:
    return Credentials(USER, token, SignInMethod.OAUTH2)


def imap(script: ImapScript) -> Iterator[ScriptedImapServer]:
    server = ScriptedImapServer(script)
    server.start()
    yield server
    server.stop()


def imap_source(server: ScriptedImapServer, credentials: Credentials, log: list[str]) -> ImapSource:
    endpoint = SourceEndpoint(Protocol.IMAP, "127.0.0.1", server.port, Security.NONE, timeout=5)
    return ImapSource(endpoint, credentials, log.append)


def secrets_in(text: str, token: str) -> bool:
    forms = [
        token,
        base64.b64encode(f"user={USER}\x01auth=Bearer {token}\x01\x01".encode()).decode(),
    ]
    return any(form in text for form in forms)


@pytest.mark.parametrize("sasl_ir", [True, False])
def test_imap_signs_in_with_xoauth2(sasl_ir: bool) -> None:
    for server in imap(ImapScript(username=USER, oauth=("XOAUTH2",), token=TOKEN, sasl_ir=sasl_ir)):
        log: list[str] = []
        source = imap_source(server, oauth(), log)
        source.connect()
        source.close()
        [login] = server.oauth_logins
        assert (login.user, login.token) == (USER, TOKEN)
        authenticate = [c for c in server.commands if c.startswith("AUTHENTICATE")]
        assert authenticate and ("XOAUTH2 " in authenticate[0]) is sasl_ir
        assert not any(c.startswith("LOGIN") for c in server.commands)
        assert not secrets_in("\n".join(log), TOKEN)


def test_imap_prefers_oauthbearer_with_the_server_named() -> None:
    script = ImapScript(username=USER, oauth=("XOAUTH2", "OAUTHBEARER"), token=TOKEN, sasl_ir=True)
    for server in imap(script):
        source = imap_source(server, oauth(), [])
        source.connect()
        source.close()
        [login] = server.oauth_logins
        assert (login.user, login.token, login.host, login.port) == (
            USER, TOKEN, "127.0.0.1", str(server.port)
        )  # fmt: skip
        assert any(c.startswith("AUTHENTICATE OAUTHBEARER") for c in server.commands)


def test_gmails_error_challenge_is_answered_and_reported_without_the_token() -> None:
    for server in imap(ImapScript(username=USER, oauth=("XOAUTH2",), token=TOKEN, sasl_ir=True)):
        log: list[str] = []
        source = imap_source(server, oauth(WRONG), log)
        with pytest.raises(TokenRejected) as refused:
            source.connect()
        source.abort()
        message = str(refused.value)
        assert "status 401, scope https://mail.google.com/" in message
        assert "Invalid credentials" in message
        assert any("XOAUTH2 refused the access token (status 401" in line for line in log)
        assert server.commands[-1] == ""  # XOAUTH2 answers the challenge with an empty line
        assert not secrets_in(message + "\n".join(log), WRONG)
        assert isinstance(refused.value, AuthenticationFailed)  # the poller refreshes on it


def test_a_password_account_still_logs_in_with_login() -> None:
    script = ImapScript(username=USER, password="pw", oauth=("XOAUTH2",), token=TOKEN)
    for server in imap(script):
        source = imap_source(server, Credentials(USER, "pw"), [])
        source.connect()
        source.close()
        assert server.oauth_logins == []
        assert any(c.startswith("LOGIN") for c in server.commands)


def pop3(script: Pop3Script) -> Iterator[ScriptedPop3Server]:
    server = ScriptedPop3Server(script)
    server.start()
    yield server
    server.stop()


def pop3_source(server: ScriptedPop3Server, credentials: Credentials, log: list[str]) -> Pop3Source:
    return Pop3Source(server.endpoint(Security.NONE), credentials, log.append)


def test_pop3_signs_in_to_microsoft_with_the_two_step_xoauth2() -> None:
    script = Pop3Script(username=USER, oauth=("XOAUTH2",), token=TOKEN, microsoft=True)
    for server in pop3(script):
        source = pop3_source(server, oauth(), [])
        source.connect()
        source.close()
        [login] = server.oauth_logins
        assert (login.user, login.token) == (USER, TOKEN)
        auth = [c.line for c in server.commands if c.verb == "AUTH"]
        assert auth == ["AUTH XOAUTH2"]  # no initial response: Microsoft refuses it
        assert not any(c.verb in ("USER", "PASS") for c in server.commands)


def test_pop3_a_refused_token_at_microsoft_is_a_token_error() -> None:
    script = Pop3Script(username=USER, oauth=("XOAUTH2",), token=TOKEN, microsoft=True)
    for server in pop3(script):
        log: list[str] = []
        with pytest.raises(TokenRejected, match="Authentication failure") as refused:
            pop3_source(server, oauth(WRONG), log).connect()
        assert not secrets_in(str(refused.value) + "\n".join(log), WRONG)


def test_pop3_oauthbearer_answers_the_error_challenge_with_ctrl_a() -> None:
    script = Pop3Script(username=USER, oauth=("XOAUTH2", "OAUTHBEARER"), token=TOKEN)
    for server in pop3(script):
        log: list[str] = []
        with pytest.raises(TokenRejected, match="status 401"):
            pop3_source(server, oauth(WRONG), log).connect()
        assert server.oauth_replies == ["AQ=="]  # base64 of ^A (RFC 7628 §3.2.3)
        assert server.oauth_logins[0].host == "127.0.0.1"
        assert any("OAUTHBEARER refused the access token" in line for line in log)
