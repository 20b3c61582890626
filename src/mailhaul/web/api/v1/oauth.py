"""`/oauth/providers` (admins): the OAuth2 clients accounts sign in through; the client
secret is write-only. `/accounts/{id}/connect`: start an account's device flow."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from mailhaul.domain.oauth import Endpoints, Grant, Preset
from mailhaul.services.oauth_providers import ProviderRequest, provider_dict
from mailhaul.web.api.v1 import schemas
from mailhaul.web.api.v1.deps import AccountId, AdminOnly, AnyUser, Mailhaul
from mailhaul.web.api.v1.errors import (
    FORBIDDEN,
    INVALID,
    MALFORMED,
    NOT_FOUND,
    PROVIDER,
    responses,
)

router = APIRouter(tags=["oauth"])

Url = str
ProviderName = str


class ProviderCreate(schemas._Input):
    """A provider by preset, by issuer, or by endpoint URLs (one of the three)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: str | None = Field(
        default=None, max_length=4096, description="Write-only; none for a public client."
    )
    preset: Preset | None = None
    tenant: str = Field(default="", max_length=255, description="Microsoft: tenant or common.")
    grant: Grant = Grant.USER
    issuer: Url = Field(default="", max_length=2048)
    authorize_url: Url = Field(default="", max_length=2048)
    token_url: Url = Field(default="", max_length=2048)
    device_url: Url = Field(default="", max_length=2048)
    revoke_url: Url = Field(default="", max_length=2048)
    scope: str = Field(default="", max_length=2048)


class Provider(BaseModel):
    """A registered provider (its secret only as set or not)."""

    id: int
    name: str
    preset: str | None
    grant: str
    client_id: str
    has_client_secret: bool
    tenant: str | None
    issuer: str | None
    scope: str
    authorize_url: str | None
    token_url: str
    device_url: str | None
    revoke_url: str | None


class DeviceCode(BaseModel):
    """What the user needs to approve the connection at the provider (RFC 8628)."""

    verification_uri: str
    verification_uri_complete: str | None
    user_code: str
    expires_in: int = Field(description="Seconds the code stays valid.")


@router.get("/oauth/providers", responses=responses(FORBIDDEN))
def list_providers(_actor: AdminOnly, app: Mailhaul) -> list[Provider]:
    """Every registered OAuth2 provider."""
    return [Provider.model_validate(provider_dict(p)) for p in app.oauth_providers.list()]


@router.post(
    "/oauth/providers", status_code=201, responses=responses(FORBIDDEN, INVALID, MALFORMED)
)
def add_provider(body: ProviderCreate, _actor: AdminOnly, app: Mailhaul) -> Provider:
    """Register an OAuth2 provider (endpoints https, or http on loopback)."""
    request = ProviderRequest(
        name=body.name,
        client_id=body.client_id,
        client_secret=body.client_secret or "",
        preset=body.preset,
        tenant=body.tenant,
        grant=body.grant,
        issuer=body.issuer,
        endpoints=Endpoints(body.authorize_url, body.token_url, body.device_url, body.revoke_url),
        scope=body.scope,
    )
    return Provider.model_validate(provider_dict(app.oauth_providers.add(request)))


@router.get("/oauth/providers/{name}", responses=responses(FORBIDDEN, NOT_FOUND))
def get_provider(name: ProviderName, _actor: AdminOnly, app: Mailhaul) -> Provider:
    """One provider."""
    return Provider.model_validate(provider_dict(app.oauth_providers.get(name)))


@router.delete(
    "/oauth/providers/{name}",
    status_code=204,
    response_class=Response,
    responses=responses(FORBIDDEN, NOT_FOUND, INVALID),
)
def delete_provider(name: ProviderName, _actor: AdminOnly, app: Mailhaul) -> Response:
    """Delete a provider no account signs in through (422 names how many do)."""
    app.oauth_providers.delete(name)
    return Response(status_code=204)


@router.post("/accounts/{account_id}/connect", responses=responses(NOT_FOUND, INVALID, PROVIDER))
def connect_account(account_id: AccountId, actor: AnyUser, app: Mailhaul) -> DeviceCode:
    """Start the device flow of an OAuth2 account: show the user the code and the URL; the
    account turns connected (``sign_in_problem`` null) once they approve it."""
    account = app.account_access.get(actor, account_id)
    device = app.pending_connects.start(account)
    return DeviceCode.model_validate(device.public(time.time()))
