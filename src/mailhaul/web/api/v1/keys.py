"""API keys: a user's own, or those of the users the caller manages."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mailhaul.web.api.v1 import convert, schemas
from mailhaul.web.api.v1.deps import AnyUser, KeyId, Mailhaul, UserId
from mailhaul.web.api.v1.errors import INVALID, MALFORMED, NOT_FOUND, responses

router = APIRouter(tags=["keys"])


@router.get("/users/{user_id}/keys", responses=responses(NOT_FOUND, INVALID))
def list_keys(user_id: UserId, actor: AnyUser, app: Mailhaul) -> list[schemas.ApiKey]:
    """A user's API keys (never the secrets)."""
    return [convert.key(key) for key in app.users.keys(actor, user_id)]


@router.post(
    "/users/{user_id}/keys", status_code=201, responses=responses(NOT_FOUND, INVALID, MALFORMED)
)
def create_key(
    user_id: UserId, body: schemas.ApiKeyCreate, actor: AnyUser, app: Mailhaul
) -> schemas.ApiKeyCreated:
    """A new API key for a user; its secret is in this response and nowhere else."""
    key, secret = app.users.create_key(actor, user_id, body.name)
    return schemas.ApiKeyCreated(**convert.key(key).model_dump(), key=secret)


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    response_class=Response,
    responses=responses(NOT_FOUND, INVALID),
)
def revoke_key(key_id: KeyId, actor: AnyUser, app: Mailhaul) -> Response:
    """Revoke an API key at once."""
    app.users.revoke_key(actor, key_id)
    return Response(status_code=204)
