"""What the API's routes take: the caller (role-checked), the application, path ids."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPBearer

from mailhaul.bootstrap import App
from mailhaul.domain.access import Principal
from mailhaul.web.api.v1.schemas import MAX_ID
from mailhaul.web.auth import Access, api_access, app_of

# Documents the Bearer scheme in OpenAPI; `api_access` does the checking (401/403).
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="An API key (`mh_…`) from `mailhaul user key create` or the web UI.",
)

AnyUser = Annotated[Principal, Depends(api_access(Access.USER))]
Manager = Annotated[Principal, Depends(api_access(Access.MANAGER))]
AdminOnly = Annotated[Principal, Depends(api_access(Access.ADMIN))]


def _mailhaul(request: Request) -> App:
    return app_of(request)


Mailhaul = Annotated[App, Depends(_mailhaul)]
AccountId = Annotated[int, Path(ge=1, le=MAX_ID, description="The account's id.")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.")]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID, description="The API key's id.")]
