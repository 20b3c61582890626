"""Talking to an OAuth2 authorization server: Authlib's OAuth2Client over httpx.

Refresh, client credentials, the device flow (RFC 8628), the authorization code with PKCE
(S256), revocation and discovery (RFC 8414 / OpenID Connect). Certificates are checked
against the system's CAs (``adapters/tls.py``); the provider's endpoints were checked when it
was registered (https, or loopback: ``domain/oauth.py``).

Errors leave as domain errors: ``invalid_grant`` (and a declined or expired device code) is
``SignInNeeded``; no answer, a 5xx or a 429 is ``TokenEndpointDown``; anything else the
server refuses is an ``OAuthError`` naming the server's error code. No token or secret is
ever part of an error's text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from authlib.integrations.httpx_client import OAuth2Client

from mailhaul.adapters.tls import shared_context
from mailhaul.domain.errors import ConfigError, OAuthError, SignInNeeded, TokenEndpointDown
from mailhaul.domain.oauth import Endpoints, OAuthProvider, TokenSet, check_endpoint_url

TIMEOUT = 30.0
"""Seconds one request to the authorization server may take."""
GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
MAX_BODY = 64 * 1024
"""The largest answer read from an authorization server, in bytes."""


@dataclass(frozen=True)
class DeviceAuthorization:
    """What the user needs to approve a device (RFC 8628 §3.2); the device code stays here."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_at: float
    interval: float

    def public(self, now: float) -> dict[str, Any]:
        """What is shown to the user (``--json`` and the API): no device code."""
        return {
            "verification_uri": self.verification_uri,
            "verification_uri_complete": self.verification_uri_complete or None,
            "user_code": self.user_code,
            "expires_in": max(int(self.expires_at - now), 0),
        }


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the user for consent, and what the callback needs to finish."""

    url: str
    state: str
    code_verifier: str


class TokenEndpoint:
    """One provider's authorization server, with the client's credentials."""

    def __init__(self, provider: OAuthProvider, client_secret: str, timeout: float = TIMEOUT):
        self.provider = provider
        self._secret = client_secret
        self._timeout = timeout

    def _http(self) -> httpx.Client:
        return httpx.Client(timeout=self._timeout, verify=shared_context(None), trust_env=False)

    @contextmanager
    def _client(self) -> Iterator[OAuth2Client]:
        client = OAuth2Client(
            client_id=self.provider.client_id,
            client_secret=self._secret or None,
            scope=self.provider.scope,
            token_endpoint_auth_method="client_secret_post" if self._secret else "none",
            code_challenge_method="S256",
            timeout=self._timeout,
            verify=shared_context(None),
            trust_env=False,
        )
        try:
            with _errors_mapped(self.provider.name):
                yield client
        finally:
            client.close()

    def refresh(self, tokens: TokenSet) -> TokenSet:
        """New tokens for ``tokens``' refresh token (a rotated refresh token comes back)."""
        if not tokens.refresh_token:
            raise SignInNeeded(f"{self.provider.name}: no refresh token is stored")
        now = time.time()
        with self._client() as client:
            answer = client.refresh_token(
                self.provider.endpoints.token_url, refresh_token=tokens.refresh_token
            )
        return tokens.refreshed(_token_set(answer, now))

    def client_credentials(self) -> TokenSet:
        """An app-only access token (the client-credentials grant)."""
        now = time.time()
        with self._client() as client:
            answer = client.fetch_token(
                self.provider.endpoints.token_url, grant_type="client_credentials"
            )
        return _token_set(answer, now)

    def start_device(self) -> DeviceAuthorization:
        """Ask for a device code and the code the user types (RFC 8628 §3.1)."""
        url = self.provider.endpoints.device_url
        if not url:
            raise ConfigError(
                f"{self.provider.name} has no device flow: connect the account in the web UI"
            )
        now = time.time()
        data = {"client_id": self.provider.client_id, "scope": self.provider.scope}
        if self._secret:
            data["client_secret"] = self._secret
        with _errors_mapped(self.provider.name), self._http() as http:
            body = _json(http.post(url, data=data))
        return _device_authorization(body, now, self.provider.name)

    def poll_device(self, device: DeviceAuthorization) -> TokenSet | None:
        """The tokens once the user approved; None while pending. ``slow_down`` is the
        caller's to honour (``DeviceSlowDown``)."""
        now = time.time()
        try:
            with self._client() as client:
                answer = client.fetch_token(
                    self.provider.endpoints.token_url,
                    grant_type=GRANT_DEVICE_CODE,
                    device_code=device.device_code,
                )
        except _Pending as pending:
            if pending.slow_down:
                raise DeviceSlowDown() from None
            return None
        return _token_set(answer, now)

    def authorization(self, redirect_uri: str) -> AuthorizationRequest:
        """The consent URL for the authorization-code flow with PKCE (S256)."""
        url = self.provider.endpoints.authorize_url
        if not url:
            raise OAuthError(f"{self.provider.name} has no authorization URL")
        verifier = generate_token(64)
        with self._client() as client:
            consent_url, state = client.create_authorization_url(
                url, redirect_uri=redirect_uri, code_verifier=verifier, state=generate_token(32)
            )
        return AuthorizationRequest(consent_url, state, verifier)

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> TokenSet:
        """The tokens for an authorization code the callback received."""
        now = time.time()
        with self._client() as client:
            answer = client.fetch_token(
                self.provider.endpoints.token_url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
            )
        return _token_set(answer, now)


class DeviceSlowDown(Exception):
    """The server asked the device flow to poll less often (RFC 8628 §3.5)."""


class _Pending(Exception):
    def __init__(self, slow_down: bool) -> None:
        super().__init__("authorization pending")
        self.slow_down = slow_down


def discover(issuer: str, timeout: float = TIMEOUT) -> Endpoints:
    """The endpoints an issuer publishes (OpenID Connect discovery, then RFC 8414); a
    ConfigError when it publishes none, TokenEndpointDown when it cannot be reached."""
    check_endpoint_url(issuer, "issuer")
    base = issuer.rstrip("/")
    problems = []
    with httpx.Client(timeout=timeout, verify=shared_context(None), trust_env=False) as http:
        for path in DISCOVERY_PATHS:
            try:
                response = http.get(base + path)
            except httpx.HTTPError as exc:
                raise TokenEndpointDown(f"{issuer}: no answer to discovery: {exc}") from None
            if response.status_code != 200:
                problems.append(f"{path}: HTTP {response.status_code}")
                continue
            try:
                document = _json(response)
            except (ValueError, AuthlibOAuthError):
                raise ConfigError(f"{issuer}{path} is not a discovery document") from None
            endpoints = Endpoints(
                authorize_url=_text(document, "authorization_endpoint"),
                token_url=_text(document, "token_endpoint"),
                device_url=_text(document, "device_authorization_endpoint"),
                revoke_url=_text(document, "revocation_endpoint"),
            )
            if not endpoints.token_url:
                raise ConfigError(f"{issuer}: the discovery document names no token endpoint")
            return endpoints
    raise ConfigError(f"{issuer}: no discovery document ({'; '.join(problems)})")


@contextmanager
def _errors_mapped(name: str) -> Iterator[None]:
    try:
        yield
    except AuthlibOAuthError as exc:
        code = str(exc.error or "")
        if code in ("authorization_pending", "slow_down"):
            raise _Pending(code == "slow_down") from None
        described = f"{code}: {exc.description}" if exc.description else code
        if code == "invalid_grant":
            raise SignInNeeded(f"{name} refused the grant ({described})") from None
        if code == "access_denied":
            raise SignInNeeded(f"{name}: the sign-in was declined ({described})") from None
        if code == "expired_token":
            raise SignInNeeded(f"{name}: the code expired before it was approved") from None
        raise OAuthError(f"{name} refused the request ({described})") from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        if status >= 500 or status == 429:
            raise TokenEndpointDown(f"{name}'s authorization server answered {status}") from None
        raise OAuthError(f"{name}'s authorization server answered {status}") from None
    except httpx.HTTPError as exc:
        raise TokenEndpointDown(f"{name}'s authorization server cannot be reached: {exc}") from None
    except ValueError:
        raise OAuthError(f"{name}'s authorization server sent no usable answer") from None


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 500 or response.status_code == 429:
        response.raise_for_status()
    if len(response.content) > MAX_BODY:
        raise ValueError("answer too large")
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    if response.status_code != 200 or "error" in body:
        raise AuthlibOAuthError(
            error=str(body.get("error", response.status_code)),
            description=_text(body, "error_description"),
        )
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0 < number < 10 * 365 * 86400 else None


def _token_set(answer: dict[str, Any], now: float) -> TokenSet:
    """A token response as a TokenSet (``expires_in`` counted from when it was asked for)."""
    access = _text(answer, "access_token")
    if not access:
        raise OAuthError("the authorization server's answer holds no access token")
    expires_in = _number(answer, "expires_in")
    return TokenSet(
        access_token=access,
        refresh_token=_text(answer, "refresh_token"),
        expires_at=now + expires_in if expires_in is not None else None,
        issued_at=now,
    )


def _device_authorization(body: dict[str, Any], now: float, name: str) -> DeviceAuthorization:
    device_code = _text(body, "device_code")
    user_code = _text(body, "user_code")
    uri = _text(body, "verification_uri") or _text(body, "verification_url")  # Google's name
    if not (device_code and user_code and uri):
        raise OAuthError(f"{name}'s device authorization answer lacks a code or a URL")
    check_endpoint_url(uri, "verification")
    complete = _text(body, "verification_uri_complete")
    if complete:
        check_endpoint_url(complete, "verification")
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code[:64],
        verification_uri=uri,
        verification_uri_complete=complete,
        expires_at=now + (_number(body, "expires_in") or 600.0),
        interval=_number(body, "interval") or 5.0,
    )
