"""Signing in to a POP3 server: USER/PASS, SASL PLAIN where USER is not offered, or with an
OAuth2 access token AUTH OAUTHBEARER (where offered) or AUTH XOAUTH2, both in the two-step
form (the command, the server's ``+``, then the response: Microsoft requires it for
XOAUTH2). A server's error challenge is answered as the mechanism says (RFC 7628) and its
status and scope logged, never the token."""

from __future__ import annotations

from mailhaul.adapters.sources.pop3.parsing import MAX_AUTH_COMMAND, Reply, check_argument
from mailhaul.adapters.sources.pop3.session import Pop3Connection
from mailhaul.domain.errors import (
    AuthenticationFailed,
    LoginDeferred,
    ProtocolViolation,
    SourceError,
    TokenRejected,
)
from mailhaul.domain.options import Credentials, SignInMethod, SourceEndpoint
from mailhaul.domain.ports import LogFn
from mailhaul.domain.redaction import sasl_plain
from mailhaul.domain.sasl import (
    OAUTHBEARER,
    OAUTHBEARER_ERROR_REPLY,
    XOAUTH2,
    XOAUTH2_ERROR_REPLY,
    OAuthChallenge,
    oauthbearer_response,
    parse_challenge,
    xoauth2_response,
)

TRANSIENT_CODES = frozenset({"IN-USE", "SYS/TEMP", "LOGIN-DELAY"})
"""RFC 2449/3206 response codes that say "not now" rather than "wrong credentials"."""


class Pop3SignIn:
    """Logs one session in with its credentials."""

    def __init__(
        self, conn: Pop3Connection, credentials: Credentials, endpoint: SourceEndpoint, log: LogFn
    ) -> None:
        self._conn = conn
        self._credentials = credentials
        self._endpoint = endpoint
        self._log = log

    def run(self, caps: frozenset[str]) -> None:
        """Log in as the credentials say; the right error when the server refuses."""
        username, password = self._credentials.username, self._credentials.password
        check_argument(username, "username")
        check_argument(password, "password")
        if self._credentials.method is SignInMethod.OAUTH2:
            self._auth_oauth(OAUTHBEARER if "AUTH=OAUTHBEARER" in caps else XOAUTH2)
            return
        if "USER" not in caps and "AUTH=PLAIN" in caps:
            self._auth_plain()
            return
        conn = self._conn
        conn.send(f"USER {username}\r\n")
        reply = conn.read_reply()
        if reply.ok:
            conn.send(f"PASS {password}\r\n")
            reply = conn.read_reply()
        if not reply.ok:
            raise self._error(reply)

    def _auth_plain(self) -> None:
        conn = self._conn
        response = sasl_plain(self._credentials.username, self._credentials.password)
        command = f"AUTH PLAIN {response}\r\n"
        if len(command) <= MAX_AUTH_COMMAND:
            conn.send(command)
        else:
            conn.send("AUTH PLAIN\r\n")
            if not self._continuation():
                raise ProtocolViolation("the server accepted AUTH PLAIN without credentials")
            conn.send(f"{response}\r\n")
        if self._continuation():
            # The server wants more than PLAIN ever sends: cancel (RFC 5034) and give up.
            conn.send("*\r\n")
            conn.read_reply()
            raise AuthenticationFailed(
                f"{self._endpoint.describe()} did not accept the SASL PLAIN response"
            )

    def _auth_oauth(self, mechanism: str) -> None:
        conn, credentials, endpoint = self._conn, self._credentials, self._endpoint
        if mechanism == OAUTHBEARER:
            response = oauthbearer_response(
                credentials.username, credentials.password, endpoint.host, endpoint.port
            )
        else:
            response = xoauth2_response(credentials.username, credentials.password)
        conn.send(f"AUTH {mechanism}\r\n")
        if not self._continuation():
            raise ProtocolViolation(f"the server accepted AUTH {mechanism} without a token")
        conn.send(f"{response}\r\n")
        line = conn.readline()
        if not _is_continuation(line):
            reply = conn.parse(line)
            if not reply.ok:
                raise self._error(reply)
            return
        challenge = parse_challenge(line[1:].decode("ascii", "replace"))
        self._log(f"pop3: {mechanism} refused the access token ({_said(challenge)})")
        answer = OAUTHBEARER_ERROR_REPLY if mechanism == OAUTHBEARER else XOAUTH2_ERROR_REPLY
        conn.send(f"{answer}\r\n")
        line = conn.readline()
        if _is_continuation(line):  # still more wanted: cancel the exchange
            conn.send("*\r\n")
            line = conn.readline()
        raise self._error(conn.parse(line), challenge)

    def _continuation(self) -> bool:
        """True on a ``+`` prompt, False on +OK; raises on -ERR."""
        line = self._conn.readline()
        if _is_continuation(line):
            return True
        reply = self._conn.parse(line)
        if not reply.ok:
            raise self._error(reply)
        return False

    def _error(self, reply: Reply, challenge: OAuthChallenge | None = None) -> SourceError:
        who = f"{self._endpoint.describe()} for {self._credentials.username}"
        if reply.code in TRANSIENT_CODES:
            return LoginDeferred(f"login to {who} failed for now: {reply.text}")
        if self._credentials.method is SignInMethod.OAUTH2:
            said = f" ({_said(challenge)})" if challenge is not None else ""
            return TokenRejected(f"{who} refused the access token: {reply.text}{said}")
        return AuthenticationFailed(f"login to {who} rejected: {reply.text}")


def _is_continuation(line: bytes) -> bool:
    return line.startswith(b"+ ") or line.rstrip(b"\r\n") == b"+"


def _said(challenge: OAuthChallenge | None) -> str:
    return (challenge.describe() if challenge else "") or "no reason given"
