"""A real OAuth2 authorization server on loopback for the tests, built on Authlib's server
side (Flask integration) with in-memory records: authorization code with PKCE (a consent page
with Approve and Deny), refresh (with rotation), client credentials, the device flow
(RFC 8628), revocation and introspection (RFC 7662, as Dovecot's oauth2 passdb asks).

Test controls are plain methods: approve or deny a device code, revoke a user's grants,
expire the access tokens, take the token endpoint down (503), count refresh grants.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import (
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

SECRET_AUTH = ("client_secret_basic", "client_secret_post")
ANY_AUTH = (*SECRET_AUTH, "none")
CONSENT_PAGE = """<!doctype html><title>Test IdP consent</title>
<h1>Allow {client} to read your mail?</h1>
<form method="post"><input type="hidden" name="user" value="{user}">
<button name="decision" value="approve" id="approve">Approve</button>
<button name="decision" value="deny" id="deny">Deny</button></form>"""


class _Quiet(WSGIRequestHandler):
    def log_request(self, *_args: object, **_kwargs: object) -> None:
        pass  # no line per request on the test's stderr


@dataclass
class Client(ClientMixin):
    """A registered client (Authlib's ClientMixin, by duck typing)."""

    client_id: str
    client_secret: str = ""
    redirect_uris: tuple[str, ...] = ()
    scope: str = "mail offline_access"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0] if self.redirect_uris else ""

    def get_allowed_scope(self, scope: Collection[str] | str) -> str:
        asked = scope.split() if isinstance(scope, str) else list(scope)
        allowed = set(self.scope.split())
        return " ".join(s for s in asked if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.client_secret) and secrets.compare_digest(
            client_secret, self.client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret:
            return method in ("client_secret_basic", "client_secret_post")
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return True


@dataclass
class Token(TokenMixin):
    """An issued token pair (Authlib's TokenMixin, by duck typing)."""

    client_id: str
    user: str
    scope: str
    access_token: str
    refresh_token: str
    expires_at: float
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user


@dataclass
class Code:
    """An authorization code with its PKCE challenge."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> None:
        return None

    def get_auth_time(self) -> None:
        return None


@dataclass
class State:
    """Everything the server holds; the tests read and change it through OAuthTestServer."""

    clients: dict[str, Client] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    codes: dict[str, Code] = field(default_factory=dict)
    devices: dict[str, DeviceCredentialDict] = field(default_factory=dict)
    device_users: dict[str, tuple[str, bool]] = field(default_factory=dict)  # user_code →
    refreshes: dict[str, int] = field(default_factory=dict)  # user → refresh grants
    token_requests: int = 0
    down_until: float = 0.0
    token_delay: float = 0.0  # seconds each token request takes (a slow provider)
    lock: threading.Lock = field(default_factory=threading.Lock)


class OAuthTestServer:
    """The server on 127.0.0.1:``port`` (a thread); ``base`` is its URL."""

    def __init__(self, access_lifetime: int = 3600, consent_user: str = "me@example.net"):
        self.state = State()
        self.access_lifetime = access_lifetime
        self.consent_user = consent_user
        self.app = _build_app(self)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_Quiet)
        self.port = int(self._server.server_port)
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OAuthTestServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._thread.join(5)

    # registration and controls -------------------------------------------------------------
    def add_client(self, client_id: str, secret: str = "", redirect_uri: str = "") -> Client:
        client = Client(client_id, secret, (redirect_uri,) if redirect_uri else ())
        self.state.clients[client_id] = client
        return client

    def approve_device(self, user_code: str, user: str | None = None) -> None:
        self.state.device_users[user_code] = (user or self.consent_user, True)

    def deny_device(self, user_code: str) -> None:
        self.state.device_users[user_code] = (self.consent_user, False)

    def last_user_code(self) -> str:
        [*_, last] = self.state.devices.values()
        return str(last["user_code"])

    def revoke_user(self, user: str) -> None:
        for token in self.state.tokens:
            if token.user == user:
                token.revoked = True

    def expire_access_tokens(self) -> None:
        for token in self.state.tokens:
            token.expires_at = min(token.expires_at, time.time() - 1)

    def go_down(self, seconds: float) -> None:
        self.state.down_until = time.time() + seconds

    def active_token(self, access_token: str) -> Token | None:
        for token in self.state.tokens:
            if token.access_token == access_token and not token.revoked and not token.is_expired():
                return token
        return None

    def endpoints(self) -> dict[str, str]:
        return {
            "authorize_url": f"{self.base}/authorize",
            "token_url": f"{self.base}/token",
            "device_url": f"{self.base}/device_authorization",
            "revoke_url": f"{self.base}/revoke",
        }


def _build_app(owner: OAuthTestServer) -> Flask:
    state = owner.state
    app = Flask("mailhaul-test-idp")

    def save_token(token: dict[str, Any], req: Any) -> None:
        user = req.user if isinstance(getattr(req, "user", None), str) else req.client.client_id
        state.tokens.append(
            Token(
                req.client.client_id,
                user,
                token.get("scope", ""),
                token["access_token"],
                token.get("refresh_token", ""),
                time.time() + token["expires_in"],
            )
        )

    server = AuthorizationServer(app, query_client=state.clients.get, save_token=save_token)
    server.register_token_generator(  # lifetimes read when issued: a test may shorten them
        "default",
        BearerTokenGenerator(
            lambda *_a, **_k: generate_token(42),
            lambda *_a, **_k: generate_token(48),
            lambda _client, _grant_type: owner.access_lifetime,
        ),
    )

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = [*ANY_AUTH]  # noqa: RUF012 (Authlib's)

        def save_authorization_code(self, code: str, req: Any) -> None:
            state.codes[code] = Code(
                code,
                req.client.client_id,
                req.payload.redirect_uri,
                req.payload.scope,
                req.user,
                req.payload.data.get("code_challenge"),
                req.payload.data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: ClientMixin) -> Code | None:
            found = state.codes.get(code)
            return found if found and found.client_id == client.get_client_id() else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> str:
            return authorization_code.user

    class RefreshGrant(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = [*ANY_AUTH]  # noqa: RUF012 (Authlib's)

        INCLUDE_NEW_REFRESH_TOKEN = True  # rotation, as Microsoft does

        def authenticate_refresh_token(self, refresh_token: str) -> TokenMixin:
            for token in state.tokens:
                if token.refresh_token == refresh_token and not token.revoked:
                    return token
            return None  # type: ignore[return-value]  # Authlib reads None as invalid_grant

        def authenticate_user(self, refresh_token: Any) -> str:
            user = str(refresh_token.user)
            state.refreshes[user] = state.refreshes.get(user, 0) + 1
            return user

        def revoke_old_credential(self, refresh_token: TokenMixin) -> None:
            assert isinstance(refresh_token, Token)
            refresh_token.revoked = True

    class AppGrant(grants.ClientCredentialsGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_AUTH]  # noqa: RUF012 (Authlib's)

    class DeviceGrant(DeviceCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = [*ANY_AUTH]  # noqa: RUF012 (Authlib's)

        def query_device_credential(self, device_code: str) -> DeviceCredentialDict | None:
            return state.devices.get(device_code)

        def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
            return state.device_users.get(user_code)

        def should_slow_down(self, credential: Any) -> bool:
            return False

    class DeviceEndpoint(DeviceAuthorizationEndpoint):
        CLIENT_AUTH_METHODS = [*ANY_AUTH]  # noqa: RUF012 (Authlib's)
        INTERVAL = 1  # seconds between the client's polls (the RFC's default is 5)

        def get_verification_uri(self) -> str:
            return f"{owner.base}/device"

        def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
            credential = DeviceCredentialDict(client_id=client_id, scope=scope, **data)
            credential["expires_at"] = int(time.time()) + int(data.get("expires_in", 600))
            state.devices[str(data["device_code"])] = credential

    server.register_grant(CodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshGrant)
    server.register_grant(AppGrant)
    server.register_grant(DeviceGrant)
    server.register_endpoint(DeviceEndpoint)  # type: ignore[arg-type]

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        if request.method == "GET":
            grant = server.get_consent_grant(end_user=owner.consent_user)  # type: ignore[no-untyped-call]
            page = CONSENT_PAGE.format(client=grant.client.client_id, user=owner.consent_user)
            return Response(page, mimetype="text/html")
        approved = request.form.get("decision") == "approve"
        user = request.form.get("user") or owner.consent_user
        grant = server.get_consent_grant(end_user=user)  # type: ignore[no-untyped-call]
        return server.create_authorization_response(
            grant_user=user if approved else None, grant=grant
        )

    @app.route("/token", methods=["POST"])
    def token() -> Any:
        with state.lock:
            state.token_requests += 1
        if time.time() < state.down_until:
            return Response("temporarily unavailable", status=503)
        time.sleep(state.token_delay)
        return server.create_token_response()

    @app.route("/device_authorization", methods=["POST"])
    def device_authorization() -> Any:
        return server.create_endpoint_response("device_authorization")  # type: ignore[no-untyped-call]

    @app.route("/introspect", methods=["POST"])
    def introspect() -> Any:
        found = owner.active_token(request.form.get("token", ""))
        if found is None:
            return {"active": False}
        return {
            "active": True,
            "username": found.user,
            "scope": found.scope,
            "exp": int(found.expires_at),
            "client_id": found.client_id,
        }

    @app.route("/revoke", methods=["POST"])
    def revoke() -> Any:
        value = request.form.get("token", "")
        for token in state.tokens:
            if value in (token.access_token, token.refresh_token):
                token.revoked = True
        return Response("", status=200)

    @app.route("/.well-known/openid-configuration")
    def discovery() -> Any:
        ends = owner.endpoints()
        return {
            "issuer": owner.base,
            "authorization_endpoint": ends["authorize_url"],
            "token_endpoint": ends["token_url"],
            "device_authorization_endpoint": ends["device_url"],
            "revocation_endpoint": ends["revoke_url"],
            "introspection_endpoint": f"{owner.base}/introspect",
        }

    return app
