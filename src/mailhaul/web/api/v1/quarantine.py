"""An account's quarantine: infected messages the virus check kept out of its mailbox,
released into the mailbox or deleted by whoever may see the account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from mailhaul.adapters.db.quarantine import QuarantinedMessage
from mailhaul.web.api.v1.deps import AccountId, AnyUser, Mailhaul
from mailhaul.web.api.v1.errors import INVALID, NOT_FOUND, responses

router = APIRouter(prefix="/accounts", tags=["quarantine"])
MessageId = Annotated[int, Path(ge=1, le=2**62, description="A quarantined message's id.")]


class Quarantined(BaseModel):
    """An infected message kept in the quarantine."""

    id: int
    account_id: int
    folder: str = Field(description="The source folder it was fetched from.")
    uid: str
    signature: str = Field(description="What the virus scanner found.", examples=["Eicar"])
    scanner: str = Field(examples=["clamd"])
    size: int
    sender: str = Field(description="Its From header.")
    subject: str
    created_at: float


def _body(entry: QuarantinedMessage) -> Quarantined:
    values = entry.as_dict()
    del values["owner"]
    return Quarantined(**values)


@router.get("/{account_id}/quarantine", responses=responses(NOT_FOUND, INVALID))
def quarantined(account_id: AccountId, actor: AnyUser, app: Mailhaul) -> list[Quarantined]:
    """The account's quarantined messages, newest first."""
    return [_body(e) for e in app.quarantine_access.listed(actor, account_id)]


@router.post(
    "/{account_id}/quarantine/{message_id}/release", responses=responses(NOT_FOUND, INVALID)
)
def release(
    account_id: AccountId, message_id: MessageId, actor: AnyUser, app: Mailhaul
) -> Quarantined:
    """Deliver a quarantined message into the account's mailbox after all."""
    return _body(app.quarantine_access.release(actor, account_id, message_id))


@router.delete(
    "/{account_id}/quarantine/{message_id}",
    status_code=204,
    response_class=Response,
    responses=responses(NOT_FOUND, INVALID),
)
def delete(account_id: AccountId, message_id: MessageId, actor: AnyUser, app: Mailhaul) -> Response:
    """Delete a quarantined message for good."""
    app.quarantine_access.delete(actor, account_id, message_id)
    return Response(status_code=204)
