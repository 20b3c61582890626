"""Signing in to an IMAP server: greeting, STARTTLS, LOGIN or AUTHENTICATE PLAIN, or with
an OAuth2 access token AUTHENTICATE OAUTHBEARER (where offered) or XOAUTH2.

Security: ``ssl`` is implicit TLS (the ``Wire``'s); ``starttls`` refuses to go on in plain
text when STARTTLS is not offered or fails, or when the server pre-authenticated the
plain-text session; ``none`` logs that the password travels in clear. A password that
cannot be quoted goes as a literal (``LITERAL+`` where offered); a server with
``LOGINDISABLED`` gets ``AUTHENTICATE PLAIN`` (with ``SASL-IR`` where it works).
"""

from __future__ import annotations

from collections.abc import Callable

from mailhaul.adapters.sources.imap.commands import can_quote, quote
from mailhaul.adapters.sources.imap.parser import Continuation, Status
from mailhaul.adapters.sources.imap.session import TRANSIENT_CODES, ImapConnection
from mailhaul.domain.errors import (
    AuthenticationFailed,
    LoginDeferred,
    ProtocolViolation,
    TlsFailure,
    TokenRejected,
    UnsupportedByServer,
)
from mailhaul.domain.options import Credentials, Security, SignInMethod
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


class SignIn:
    """Takes one freshly opened session from its greeting to logged in.

    ``refused(extension, status)`` is told when the server advertised an extension and then
    refused it (the source does without it from then on).
    """

    def __init__(
        self,
        conn: ImapConnection,
        credentials: Credentials,
        refused: Callable[[str, Status], None],
    ) -> None:
        self._conn = conn
        self._credentials = credentials
        self._refused = refused

    def run(self) -> frozenset[str]:
        """Sign in as the endpoint's security says; the capabilities after login."""
        endpoint = self._conn.wire.endpoint
        log = self._conn.log
        preauth = self._greeting()
        if endpoint.security is Security.STARTTLS:
            if preauth:
                raise TlsFailure(
                    f"{endpoint.host} pre-authenticated the plain-text session,"
                    " so STARTTLS is impossible; refusing to go on without TLS"
                )
            self._starttls()
        elif endpoint.security is Security.NONE:
            log(
                f"imap: the connection to {endpoint.host} is not encrypted:"
                f" the {self._credentials.kind} is sent in clear"
            )
        if preauth:
            log("imap: the server pre-authenticated the session")
        else:
            self._login()
        return self._server_caps()

    def _greeting(self) -> bool:
        response = self._conn.read_response()  # a BYE here raises SessionRefused
        self._conn.greeted = True
        if not isinstance(response, Status) or response.tag is not None:
            raise ProtocolViolation("the server's first line is not an IMAP greeting")
        if response.kind not in ("OK", "PREAUTH"):
            raise ProtocolViolation(f"unexpected IMAP greeting: {response.kind}")
        return response.kind == "PREAUTH"

    def _server_caps(self) -> frozenset[str]:
        """The capabilities announced in this state, asking for them if needed."""
        if self._conn.server_caps is None:
            self._conn.check(self._conn.command(b"CAPABILITY"), "CAPABILITY")
        if self._conn.server_caps is None:
            raise ProtocolViolation("server answered CAPABILITY without listing capabilities")
        return self._conn.server_caps

    def _starttls(self) -> None:
        host = self._conn.wire.endpoint.host
        if "STARTTLS" not in self._server_caps():
            raise TlsFailure(f"{host} does not offer STARTTLS; refusing to log in without TLS")
        status = self._conn.command(b"STARTTLS")
        if status.kind != "OK":
            raise TlsFailure(f"{host} refused STARTTLS: {self._conn.redact(status.text)}")
        with self._conn.guard():
            self._conn.wire.start_tls()
        self._conn.server_caps = None  # capabilities from before TLS are not to be trusted

    def _login(self) -> None:
        caps = self._server_caps()
        user = self._credentials.username.encode("utf-8")
        secret = self._credentials.password.encode("utf-8")
        self._conn.server_caps = None
        challenge = OAuthChallenge()
        if self._credentials.method is SignInMethod.OAUTH2:
            mechanism = OAUTHBEARER if "AUTH=OAUTHBEARER" in caps else XOAUTH2
            status, challenge = self._authenticate_oauth(mechanism, "SASL-IR" in caps)
            if status.kind == "BAD" and "SASL-IR" in caps:
                self._refused("SASL-IR", status)
                status, challenge = self._authenticate_oauth(mechanism, False)
        elif "LOGINDISABLED" not in caps:
            status = self._send_with_literals(b"LOGIN", [user, secret], "LITERAL+" in caps)
        elif "AUTH=PLAIN" in caps:
            status = self._authenticate_plain("SASL-IR" in caps)
            if status.kind == "BAD" and "SASL-IR" in caps:
                self._refused("SASL-IR", status)
                status = self._authenticate_plain(False)
        else:
            raise UnsupportedByServer(
                f"{self._conn.wire.endpoint.host} disables LOGIN and offers no AUTH=PLAIN"
            )
        if status.kind == "OK":
            if status.code == "CAPABILITY":
                self._conn.note(status)
            self._conn.log(
                f"imap: logged in to {self._conn.wire.endpoint.describe()} as {user.decode()}"
            )
            return
        code = f"[{status.code}] " if status.code else ""
        host = self._conn.wire.endpoint.host
        message = (
            f"{host} rejected the login of {self._credentials.username!r}:"
            f" {code}{self._conn.redact(status.text)}"
        )
        if status.code in TRANSIENT_CODES:
            raise LoginDeferred(message)
        if self._credentials.method is SignInMethod.OAUTH2:
            said = f" ({challenge.describe()})" if challenge.describe() else ""
            raise TokenRejected(f"{message}{said}")
        raise AuthenticationFailed(message)

    def _send_with_literals(self, name: bytes, args: list[bytes], literal_plus: bool) -> Status:
        """A command whose arguments are quoted, or literals when they must be."""
        conn = self._conn
        tag = conn.new_command(name.decode("ascii"))
        pending = tag.encode("ascii") + b" " + name
        for value in args:
            if can_quote(value):
                pending += b" " + quote(value)
            elif literal_plus:
                pending += b" {%d+}\r\n" % len(value) + value
            else:
                conn.send_raw(pending + b" {%d}\r\n" % len(value))
                reply = conn.wait_continuation(tag)
                if isinstance(reply, Status):
                    return reply
                pending = value
        conn.send_raw(pending + b"\r\n")
        return conn.wait(tag)

    def _authenticate_oauth(self, mechanism: str, initial: bool) -> tuple[Status, OAuthChallenge]:
        """AUTHENTICATE with the access token; a server's error challenge is answered as
        the mechanism says and its status and scope logged (never the token)."""
        credentials, conn = self._credentials, self._conn
        endpoint = conn.wire.endpoint
        if mechanism == OAUTHBEARER:
            response = oauthbearer_response(
                credentials.username, credentials.password, endpoint.host, endpoint.port
            )
        else:
            response = xoauth2_response(credentials.username, credentials.password)
        tag = conn.new_command("AUTHENTICATE")
        if initial:
            conn.send_raw(f"{tag} AUTHENTICATE {mechanism} {response}\r\n".encode("ascii"))
        else:
            conn.send_raw(f"{tag} AUTHENTICATE {mechanism}\r\n".encode("ascii"))
            prompt = conn.wait_continuation(tag)
            if isinstance(prompt, Status):
                return prompt, OAuthChallenge()
            conn.send_raw(response.encode("ascii") + b"\r\n")
        reply = conn.wait_continuation(tag)
        if isinstance(reply, Status):
            return reply, OAuthChallenge()
        challenge = parse_challenge(reply.text)
        said = challenge.describe() or "no reason given"
        conn.log(f"imap: {mechanism} refused the access token ({said})")
        answer = OAUTHBEARER_ERROR_REPLY if mechanism == OAUTHBEARER else XOAUTH2_ERROR_REPLY
        conn.send_raw(answer.encode("ascii") + b"\r\n")
        reply = conn.wait_continuation(tag)
        if isinstance(reply, Continuation):  # still more wanted: cancel the exchange
            conn.send_raw(b"*\r\n")
            return conn.wait(tag), challenge
        return reply, challenge

    def _authenticate_plain(self, initial: bool) -> Status:
        credentials = self._credentials
        token = sasl_plain(credentials.username, credentials.password).encode("ascii")
        conn = self._conn
        if initial:
            return conn.command(b"AUTHENTICATE PLAIN " + token)
        tag = conn.new_command("AUTHENTICATE")
        conn.send_raw(tag.encode("ascii") + b" AUTHENTICATE PLAIN\r\n")
        reply = conn.wait_continuation(tag)
        if isinstance(reply, Status):
            return reply
        conn.send_raw(token + b"\r\n")
        reply = conn.wait_continuation(tag)
        if isinstance(reply, Continuation):  # the server wants more: cancel the exchange
            conn.send_raw(b"*\r\n")
            return conn.wait(tag)
        return reply
