"""`/users` (admins, and domain admins for the users of their domains) and `/me`."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from mailhaul.services.users import UserChanges
from mailhaul.web.api.v1 import convert, schemas
from mailhaul.web.api.v1.deps import AnyUser, Mailhaul, Manager, UserId
from mailhaul.web.api.v1.errors import FORBIDDEN, INVALID, MALFORMED, NOT_FOUND, responses

router = APIRouter(tags=["users"])


class MeChanges(BaseModel):
    """One's own choices."""

    model_config = ConfigDict(extra="forbid")

    notices: Literal["mailbox", "off"] = Field(
        description="Notices about one's failing accounts: into one's mailbox, or none."
    )


@router.get("/me", responses=responses())
def who_am_i(actor: AnyUser, app: Mailhaul) -> schemas.User:
    """The user the API key belongs to."""
    assert actor.user_id is not None  # API keys always belong to a user
    return convert.user(app.users.get(actor, actor.user_id))


@router.patch("/me", responses=responses(INVALID, MALFORMED))
def change_me(body: MeChanges, actor: AnyUser, app: Mailhaul) -> schemas.User:
    """One's own choices: ``notices`` (``mailbox`` or ``off``) about one's failing accounts."""
    return convert.user(app.users.set_notices(actor, body.notices))


@router.get("/users", responses=responses(FORBIDDEN))
def list_users(actor: Manager, app: Mailhaul) -> list[schemas.User]:
    """The users the caller manages (a domain admin: the users of their domains)."""
    return [convert.user(user) for user in app.users.list_users(actor)]


@router.post("/users", status_code=201, responses=responses(FORBIDDEN, INVALID, MALFORMED))
def create_user(body: schemas.UserCreate, actor: Manager, app: Mailhaul) -> schemas.User:
    """Add a user (a domain admin adds plain users of their domains)."""
    user = app.users.add(actor, body.login, body.role, body.password, body.domains)
    return convert.user(user)


@router.get("/users/{user_id}", responses=responses(FORBIDDEN, NOT_FOUND, INVALID))
def get_user(user_id: UserId, actor: Manager, app: Mailhaul) -> schemas.User:
    """One user within the caller's reach."""
    return convert.user(app.users.get(actor, user_id))


@router.patch("/users/{user_id}", responses=responses(FORBIDDEN, NOT_FOUND, INVALID, MALFORMED))
def change_user(
    user_id: UserId, body: schemas.UserPatch, actor: Manager, app: Mailhaul
) -> schemas.User:
    """Change a user's role, domains, password or whether they may sign in.

    A new password or a disabled user ends their web sessions. The last active admin
    cannot be demoted or disabled (403).
    """
    changes = UserChanges(
        role=body.role, domains=body.domains, password=body.password, active=body.active
    )
    user = app.users.edit(actor, user_id, changes)
    return convert.user(user)


@router.delete(
    "/users/{user_id}",
    status_code=204,
    response_class=Response,
    responses=responses(FORBIDDEN, NOT_FOUND, INVALID),
)
def delete_user(user_id: UserId, actor: Manager, app: Mailhaul) -> Response:
    """Delete a user with their sessions and API keys (their accounts stay)."""
    app.users.delete(actor, user_id)
    return Response(status_code=204)
