"""`/accounts`: list, create, read, replace, change, delete (passwords are write-only)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Response

from mailhaul.bootstrap import App
from mailhaul.domain.access import Principal
from mailhaul.domain.account import Account
from mailhaul.domain.errors import NotFound
from mailhaul.domain.options import SignInMethod
from mailhaul.domain.validation import FieldError
from mailhaul.services.account_access import AccountQuery
from mailhaul.services.push_status import PushStatus
from mailhaul.web.api.v1 import account_schemas, convert, schemas
from mailhaul.web.api.v1.deps import AccountId, AnyUser, Mailhaul
from mailhaul.web.api.v1.errors import INVALID, MALFORMED, NOT_FOUND, responses
from mailhaul.web.api.v1.specs import default_owner, new_password, patched_spec, spec_from_fields

router = APIRouter(prefix="/accounts", tags=["accounts"])

Page = Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")]
PerPage = Annotated[int, Query(ge=1, le=200, description="Accounts per page.")]
DomainFilter = Annotated[
    str | None,
    Query(max_length=253, pattern=schemas.PRINTABLE, description="Only owners in this domain."),
]
Search = Annotated[
    str | None,
    Query(max_length=200, pattern=schemas.PRINTABLE, description="Owner, host or username."),
]


def account_body(app: App, actor: Principal, record: Account) -> account_schemas.Account:
    """The response body of one account, with its displayed state and push state."""
    body = convert.account(record, app.account_access.account_status(actor, record.id))
    push = PushStatus(app.db, app.settings.push_enabled, app.settings.limits).of(record)
    body.push_state = account_schemas.PushState(**push.as_dict())
    return body


@router.get("", responses=responses(INVALID))
def list_accounts(
    actor: AnyUser,
    app: Mailhaul,
    page: Page = 1,
    per_page: PerPage = 50,
    domain: DomainFilter = None,
    state: account_schemas.AccountState | None = None,
    q: Search = None,
) -> account_schemas.AccountPage:
    """The accounts within the caller's reach, filtered, one page at a time."""
    query = AccountQuery(
        domain=domain or None,
        state=None if state is None else str(state),
        search=q or None,
        page=page,
        per_page=per_page,
    )
    found = app.account_access.page(actor, query)
    return account_schemas.AccountPage(
        items=[convert.summary(item) for item in found.items],
        total=found.total,
        page=found.page,
        per_page=found.per_page,
        pages=found.pages,
    )


@router.post("", status_code=201, responses=responses(INVALID, MALFORMED))
def create_account(
    body: account_schemas.AccountCreate, actor: AnyUser, app: Mailhaul
) -> account_schemas.Account:
    """Add an account; the owner defaults to the caller, the port to the protocol's."""
    owner = body.owner or default_owner(actor)
    spec = spec_from_fields(body, owner, app.settings)
    if body.sign_in == "oauth2":
        if not body.oauth_provider:
            raise FieldError("oauth_provider", "is required with sign_in oauth2")
        try:
            provider = app.oauth_providers.get(body.oauth_provider)
        except NotFound:
            raise FieldError("oauth_provider", "no such OAuth provider") from None
        spec = replace(spec, sign_in=SignInMethod.OAUTH2, oauth_provider_id=provider.id)
    elif body.password is None:
        raise FieldError("password", "is required (or sign_in oauth2 with a provider)")
    record = app.account_access.add(actor, spec, body.password)
    return account_body(app, actor, record)


@router.get("/{account_id}", responses=responses(NOT_FOUND, INVALID))
def get_account(account_id: AccountId, actor: AnyUser, app: Mailhaul) -> account_schemas.Account:
    """One account."""
    return account_body(app, actor, app.account_access.get(actor, account_id))


@router.put("/{account_id}", responses=responses(NOT_FOUND, INVALID, MALFORMED))
def replace_account(
    account_id: AccountId, body: account_schemas.AccountReplace, actor: AnyUser, app: Mailhaul
) -> account_schemas.Account:
    """Replace every setting (omitted ones take a new account's defaults; the owner and an
    omitted or empty password stay)."""
    access = app.account_access
    previous = access.get(actor, account_id)
    spec = spec_from_fields(body, previous.spec.owner, app.settings)
    record = access.edit(actor, account_id, spec, new_password(body.password))
    return account_body(app, actor, record)


@router.patch("/{account_id}", responses=responses(NOT_FOUND, INVALID, MALFORMED))
def change_account(
    account_id: AccountId, body: account_schemas.AccountPatch, actor: AnyUser, app: Mailhaul
) -> account_schemas.Account:
    """Change the settings given; an omitted or empty password keeps the stored one."""
    access = app.account_access
    previous = access.get(actor, account_id)
    spec = patched_spec(previous.spec, body)
    record = access.edit(actor, account_id, spec, new_password(body.password))
    return account_body(app, actor, record)


@router.delete(
    "/{account_id}",
    status_code=204,
    response_class=Response,
    responses=responses(NOT_FOUND, INVALID),
)
def delete_account(account_id: AccountId, actor: AnyUser, app: Mailhaul) -> Response:
    """Delete an account and its history; mail already delivered stays where it is."""
    app.account_access.delete(actor, account_id)
    return Response(status_code=204)
