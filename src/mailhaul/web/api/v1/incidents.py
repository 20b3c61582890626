"""Incidents: accounts in trouble, since when, and the notices sent about them (each caller
sees those of the accounts within their reach)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from mailhaul.web.api.v1.deps import AnyUser, Mailhaul
from mailhaul.web.api.v1.errors import INVALID, NOT_FOUND, responses

router = APIRouter(tags=["incidents"])


class IncidentNotice(BaseModel):
    """A notice about an incident."""

    event: str = Field(examples=["account.failing", "account.recovered"])
    recipient: str
    state: str = Field(description="pending, sending, sent or failed")
    attempts: int
    created_at: float
    sent_at: float | None
    last_error: str | None


class Incident(BaseModel):
    """An account's trouble, from its first failing run to its next good one."""

    id: int
    account_id: int
    owner: str
    kind: str = Field(description="failing, paused, destination_missing or sign_in_needed")
    open: bool
    opened_at: float = Field(description="The first failing run.")
    closed_at: float | None = Field(description="The next good run; null while open.")
    failures: int = Field(description="Failing runs in this incident.")
    reason: str = Field(description="The last error (the server's words, no secrets).")
    notified_at: float | None = Field(description="When its notice was queued.")
    notices: list[IncidentNotice]


@router.get("/incidents", responses=responses(NOT_FOUND, INVALID))
def incidents(
    actor: AnyUser,
    app: Mailhaul,
    account: Annotated[
        int | None, Query(ge=1, le=2**62, description="Only this account's.")
    ] = None,
    closed: Annotated[bool, Query(description="Closed incidents too (the history).")] = False,
) -> list[Incident]:
    """Open incidents of the accounts within the caller's reach (newest first)."""
    if account is not None:
        app.account_access.get(actor, account)  # 404 out of reach, as a missing one
    service = app.incidents
    found = service.listed(None if account is None else [account], not closed)
    visible = [i for i in found if actor.may_see_address(i.owner)]
    return [_body(i.as_dict(), service.notices_of(i.id)) for i in visible]


def _body(values: dict[str, Any], notices: list[dict[str, Any]]) -> Incident:
    return Incident(**values, notices=[IncidentNotice(**n) for n in notices])
