"""OAuth2 sign-in, the pure part: providers (and their presets), token sets and when to
refresh them, and which addresses an endpoint may have.

A provider is registered once by an admin (the OAuth client an organisation created at
Google, Microsoft or its own identity provider); accounts signing in with OAuth2 name one.
The flows themselves run in ``adapters/oauth_endpoint.py`` (Authlib over httpx).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import urlsplit

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.options import Protocol, Security


class Grant(StrEnum):
    """How accounts of a provider get their tokens."""

    USER = "user"  # a user consents (authorization code + PKCE, or the device flow)
    CLIENT_CREDENTIALS = "client-credentials"  # app-only (Microsoft 365 shared mailboxes)


class Preset(StrEnum):
    """Providers whose endpoints, scopes and servers mailhaul knows."""

    GOOGLE = "google"
    MICROSOFT = "microsoft"


GOOGLE_SCOPE = "https://mail.google.com/"
MICROSOFT_USER_SCOPE = (
    "https://outlook.office.com/IMAP.AccessAsUser.All "
    "https://outlook.office.com/POP.AccessAsUser.All offline_access"
)
MICROSOFT_APP_SCOPE = "https://outlook.office365.com/.default"


@dataclass(frozen=True)
class Endpoints:
    """Where a provider's flows go; ``device`` is empty when it has no device flow."""

    authorize_url: str = ""
    token_url: str = ""
    device_url: str = ""
    revoke_url: str = ""

    def check(self, grant: Grant) -> None:
        """Raise ConfigError unless the endpoints the grant needs are set and allowed."""
        if not self.token_url:
            raise ConfigError("a token URL is needed")
        if grant is Grant.USER and not (self.authorize_url or self.device_url):
            raise ConfigError("an authorization URL or a device authorization URL is needed")
        for name, url in (
            ("authorization", self.authorize_url),
            ("token", self.token_url),
            ("device authorization", self.device_url),
            ("revocation", self.revoke_url),
        ):
            if url:
                check_endpoint_url(url, name)


@dataclass(frozen=True)
class OAuthProvider:
    """An OAuth client registered at an authorization server (the secret is kept apart)."""

    name: str
    client_id: str
    endpoints: Endpoints
    scope: str
    grant: Grant = Grant.USER
    preset: Preset | None = None
    tenant: str = ""
    issuer: str = ""
    has_secret: bool = False
    id: int = 0

    def check(self) -> None:
        """Raise ConfigError if the provider cannot work as registered."""
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError("a provider name is letters, digits, '-' and '_'")
        if len(self.name) > 64:
            raise ConfigError("a provider name is at most 64 characters")
        if not self.client_id.strip():
            raise ConfigError("a client id is needed")
        if not self.scope.strip():
            raise ConfigError("a scope is needed")
        if self.grant is Grant.CLIENT_CREDENTIALS and not self.has_secret:
            raise ConfigError("the client-credentials grant needs a client secret")
        self.endpoints.check(self.grant)


@dataclass(frozen=True)
class ServerHint:
    """The mail server a preset's accounts use (filled in when the user picks it)."""

    host: str
    port: int
    security: Security = Security.SSL


PRESET_SERVERS: dict[Preset, dict[Protocol, ServerHint]] = {
    Preset.GOOGLE: {
        Protocol.IMAP: ServerHint("imap.gmail.com", 993),
        Protocol.POP3: ServerHint("pop.gmail.com", 995),
    },
    Preset.MICROSOFT: {
        Protocol.IMAP: ServerHint("outlook.office365.com", 993),
        Protocol.POP3: ServerHint("outlook.office365.com", 995),
    },
}


def preset_provider(
    preset: Preset, name: str, client_id: str, *, tenant: str = "", grant: Grant = Grant.USER
) -> OAuthProvider:
    """A provider with a preset's endpoints and scope (Google: no device flow for Gmail's
    scope; Microsoft: ``tenant`` is a tenant name or id, or ``common``/``consumers``)."""
    if preset is Preset.GOOGLE:
        if grant is not Grant.USER:
            raise ConfigError("Google has no client-credentials grant for Gmail")
        if tenant:
            raise ConfigError("a tenant is for Microsoft providers")
        endpoints = Endpoints(
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",  # noqa: S106 (a URL)
            revoke_url="https://oauth2.googleapis.com/revoke",
        )
        return OAuthProvider(name, client_id, endpoints, GOOGLE_SCOPE, grant, preset)
    tenant = tenant or "common"
    if not tenant.replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"not a tenant name or id: {tenant!r}")
    if grant is Grant.CLIENT_CREDENTIALS and tenant in ("common", "consumers", "organizations"):
        raise ConfigError("the client-credentials grant needs the organisation's own tenant")
    base = f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
    endpoints = Endpoints(
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        device_url=f"{base}/devicecode",
    )
    scope = MICROSOFT_APP_SCOPE if grant is Grant.CLIENT_CREDENTIALS else MICROSOFT_USER_SCOPE
    return OAuthProvider(name, client_id, endpoints, scope, grant, preset, tenant)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (RFC 8252 §8.3)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, name: str = "endpoint") -> None:
    """Raise ConfigError unless ``url`` is ``https://…``, or ``http(s)://`` on loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        raise ConfigError(f"the {name} URL is not a URL: {url!r}") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"the {name} URL must be https://host/…: {url!r}")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigError(
            f"the {name} URL must use https (plain http only on a loopback address): {url!r}"
        )
    if parts.username or parts.password:
        raise ConfigError(f"the {name} URL must not carry a user or password")


@dataclass(frozen=True)
class TokenSet:
    """An account's tokens; ``expires_at``/``issued_at`` are Unix times (None: not said)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_at: float | None = None
    issued_at: float = 0.0

    def needs_refresh(self, now: float) -> bool:
        """Whether to refresh before use: expired, or within a tenth of its life (at least 5
        s, at most 5 min) of expiring."""
        if not self.access_token:
            return True
        if self.expires_at is None:
            return False  # the server will say when it no longer takes it
        life = max(self.expires_at - self.issued_at, 0.0)
        margin = min(max(life / 10, 5.0), 300.0)
        return now >= self.expires_at - margin

    def refreshed(self, new: TokenSet) -> TokenSet:
        """``new`` after a refresh: the old refresh token stays unless a new one came."""
        return replace(new, refresh_token=new.refresh_token or self.refresh_token)


NOT_CONNECTED = "not connected yet"
"""The sign-in problem of an OAuth2 account nobody has connected."""


class SignInState(StrEnum):
    """Where an OAuth2 account's sign-in stands."""

    NOT_CONNECTED = "not connected"  # no tokens yet: the user has to connect
    CONNECTED = "connected"
    SIGN_IN_NEEDED = "sign-in needed"  # the grant is gone for good: the user reconnects
