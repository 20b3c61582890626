"""The OAuth2 providers an admin registers (`mailhaul oauth provider …`, later the web UI
and API): a preset, an issuer's discovery document, or endpoints given one by one. The
client secret is encrypted at rest and never read back out: only ``endpoint()`` decrypts it,
to talk to the provider."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.oauth_providers import OAuthProviderStore
from mailhaul.adapters.oauth_endpoint import TokenEndpoint, discover
from mailhaul.adapters.secrets import Purpose, SecretBox
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.oauth import Endpoints, Grant, OAuthProvider, Preset, preset_provider

ISSUER_SCOPE = "openid offline_access"
"""The scope of a provider registered by its issuer when none is given."""


@dataclass(frozen=True)
class ProviderRequest:
    """What an admin asks for: a preset, an issuer or explicit endpoints (one of them)."""

    name: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    preset: Preset | None = None
    tenant: str = ""
    grant: Grant = Grant.USER
    issuer: str = ""
    endpoints: Endpoints = field(default_factory=Endpoints)
    scope: str = ""

    def kinds(self) -> list[str]:
        """Which of preset / issuer / endpoints the request names."""
        explicit = any(vars(self.endpoints).values())
        named = [("--preset", self.preset is not None), ("--issuer", bool(self.issuer))]
        return [kind for kind, given in [*named, ("endpoint URLs", explicit)] if given]


class OAuthProviderService:
    """Register, list, show and delete providers; build a TokenEndpoint for one."""

    def __init__(
        self,
        db: Database,
        store: OAuthProviderStore,
        secret_box: SecretBox,
        discovery: Callable[[str], Endpoints] = discover,
    ) -> None:
        self.db = db
        self.store = store
        self.secret_box = secret_box
        self.discovery = discovery

    def build(self, request: ProviderRequest) -> OAuthProvider:
        """The provider a request describes, checked (an issuer's document is fetched)."""
        kinds = request.kinds()
        if len(kinds) != 1:
            raise ConfigError(
                "name one of --preset, --issuer or the endpoint URLs"
                + (f" (got {' and '.join(kinds)})" if kinds else "")
            )
        if request.preset is not None:
            provider = preset_provider(
                request.preset,
                request.name,
                request.client_id,
                tenant=request.tenant,
                grant=request.grant,
            )
            if request.scope:
                provider = replace(provider, scope=request.scope)
        else:
            if request.tenant:
                raise ConfigError("--tenant goes with --preset microsoft")
            if request.issuer:
                endpoints = self.discovery(request.issuer)
                scope = request.scope or ISSUER_SCOPE
            else:
                endpoints = request.endpoints
                scope = request.scope
                if not scope:
                    raise ConfigError("a scope is needed (--scope) with endpoint URLs")
            provider = OAuthProvider(
                request.name,
                request.client_id,
                endpoints,
                scope,
                request.grant,
                issuer=request.issuer,
            )
        provider = replace(provider, has_secret=bool(request.client_secret))
        provider.check()
        return provider

    def add(self, request: ProviderRequest) -> OAuthProvider:
        """Register a provider; the stored one (with its id)."""
        provider = self.build(request)
        with self.db.begin() as conn:
            provider_id = self.store.add(conn, provider, time.time())
            if request.client_secret:
                sealed = self.secret_box.encrypt(
                    request.client_secret, provider_id, Purpose.CLIENT_SECRET
                )
                self.store.set_secret(conn, provider_id, sealed)
            return self.store.get(conn, provider_id)

    def list(self) -> list[OAuthProvider]:
        """Every provider, by name."""
        with self.db.read() as conn:
            return self.store.list_all(conn)

    def get(self, name: str) -> OAuthProvider:
        """One provider by name; NotFound if there is none."""
        with self.db.read() as conn:
            return self.store.get(conn, name)

    def delete(self, name: str) -> None:
        """Remove a provider no account uses (ConfigError names how many do)."""
        with self.db.begin() as conn:
            provider = self.store.get(conn, name)
            using = self.store.accounts_using(conn, provider.id)
            if using:
                raise ConfigError(
                    f"{using} account(s) sign in through {name!r}: switch or delete them first"
                )
            self.store.delete(conn, provider.id)

    def endpoint(self, provider_id: int) -> TokenEndpoint:
        """The provider's authorization server, with the client secret decrypted."""
        with self.db.read() as conn:
            provider = self.store.get(conn, provider_id)
            sealed = self.store.secret_of(conn, provider_id)
        secret = (
            self.secret_box.decrypt(sealed, provider_id, Purpose.CLIENT_SECRET) if sealed else ""
        )
        return TokenEndpoint(provider, secret)


def provider_dict(provider: OAuthProvider) -> dict[str, object]:
    """A provider as `--json` and the API show it (the secret only as set or not)."""
    endpoints = provider.endpoints
    return {
        "id": provider.id,
        "name": provider.name,
        "preset": str(provider.preset) if provider.preset else None,
        "grant": str(provider.grant),
        "client_id": provider.client_id,
        "has_client_secret": provider.has_secret,
        "tenant": provider.tenant or None,
        "issuer": provider.issuer or None,
        "scope": provider.scope,
        "authorize_url": endpoints.authorize_url or None,
        "token_url": endpoints.token_url,
        "device_url": endpoints.device_url or None,
        "revoke_url": endpoints.revoke_url or None,
    }
