"""OAuth2 provider rows; every method runs inside the caller's transaction. The client
secret is stored encrypted (``Purpose.CLIENT_SECRET``) and read only by ``secret_of``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from mailhaul.adapters.db.tables import accounts, oauth_providers
from mailhaul.domain.errors import ConfigError, NotFound
from mailhaul.domain.oauth import Endpoints, Grant, OAuthProvider, Preset

_READ = [c for c in oauth_providers.c if c.name != "client_secret_enc"]


def _provider(row: Any, has_secret: bool) -> OAuthProvider:
    return OAuthProvider(
        name=row.name,
        client_id=row.client_id,
        endpoints=Endpoints(row.authorize_url, row.token_url, row.device_url, row.revoke_url),
        scope=row.scope,
        grant=Grant(row.grant),
        preset=Preset(row.preset) if row.preset else None,
        tenant=row.tenant,
        issuer=row.issuer,
        has_secret=has_secret,
        id=row.id,
    )


class OAuthProviderStore:
    """The ``oauth_providers`` table."""

    def add(self, conn: Connection, provider: OAuthProvider, now: float) -> int:
        """Insert a provider (its secret comes after, bound to the new id); its id."""
        taken = conn.execute(
            select(oauth_providers.c.id).where(oauth_providers.c.name == provider.name)
        ).first()
        if taken is not None:
            raise ConfigError(f"an OAuth provider named {provider.name!r} exists already")
        endpoints = provider.endpoints
        result = conn.execute(
            insert(oauth_providers).values(
                name=provider.name,
                preset=str(provider.preset) if provider.preset else None,
                grant=str(provider.grant),
                client_id=provider.client_id,
                client_secret_enc="",
                authorize_url=endpoints.authorize_url,
                token_url=endpoints.token_url,
                device_url=endpoints.device_url,
                revoke_url=endpoints.revoke_url,
                scope=provider.scope,
                tenant=provider.tenant,
                issuer=provider.issuer,
                created_at=now,
                updated_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def set_secret(self, conn: Connection, provider_id: int, sealed: str) -> None:
        """Store the (encrypted) client secret; "" makes the client public."""
        conn.execute(
            update(oauth_providers)
            .where(oauth_providers.c.id == provider_id)
            .values(client_secret_enc=sealed)
        )

    def secret_of(self, conn: Connection, provider_id: int) -> str:
        """The encrypted client secret ("" for a public client)."""
        sealed = conn.scalar(
            select(oauth_providers.c.client_secret_enc).where(oauth_providers.c.id == provider_id)
        )
        return str(sealed or "")

    def all_secrets(self, conn: Connection) -> list[tuple[int, str]]:
        """(provider id, encrypted secret) of every provider with a secret (key rotation)."""
        rows = conn.execute(
            select(oauth_providers.c.id, oauth_providers.c.client_secret_enc).where(
                oauth_providers.c.client_secret_enc != ""
            )
        ).all()
        return [(int(row.id), str(row.client_secret_enc)) for row in rows]

    def _select(self) -> Any:
        has_secret = (oauth_providers.c.client_secret_enc != "").label("has_secret")
        return select(*_READ, has_secret)

    def get(self, conn: Connection, name_or_id: str | int) -> OAuthProvider:
        """One provider by name or id; NotFound if there is none."""
        c = oauth_providers.c
        where = c.id == name_or_id if isinstance(name_or_id, int) else c.name == name_or_id
        row = conn.execute(self._select().where(where)).first()
        if row is None:
            raise NotFound(f"no OAuth provider {name_or_id!r}")
        return _provider(row, bool(row.has_secret))

    def list_all(self, conn: Connection) -> list[OAuthProvider]:
        """Every provider, by name."""
        rows = conn.execute(self._select().order_by(oauth_providers.c.name)).all()
        return [_provider(row, bool(row.has_secret)) for row in rows]

    def accounts_using(self, conn: Connection, provider_id: int) -> int:
        """How many accounts sign in through the provider."""
        count = conn.scalar(select(func.count()).where(accounts.c.oauth_provider_id == provider_id))
        return int(count or 0)

    def delete(self, conn: Connection, provider_id: int) -> None:
        """Remove a provider row."""
        conn.execute(delete(oauth_providers).where(oauth_providers.c.id == provider_id))
