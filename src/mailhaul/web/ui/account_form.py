"""Adding and editing an account, and "Test connection".

The password is write-only: it is never rendered back (not even after a validation error),
and an empty password on edit keeps the stored one. An empty port takes the protocol's and
security's default (static/account_form.js shows it as you choose; the server applies it:
`account_values.spec_of`). A user's accounts are owned by and delivered to their own
address; only admins set a CA file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from mailhaul.domain.access import Forbidden, Principal, Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.validation import FieldChecks, FieldError, FieldErrors, check_password
from mailhaul.services.connection_check import ConnectionReport
from mailhaul.services.users import SessionInfo
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.account_values import (
    ANTISPAM_CHOICES,
    ANTIVIRUS_CHOICES,
    DEFAULT_PORTS,
    FIELD_ALIASES,
    FIELDS,
    LABELS,
    PROTOCOLS,
    SECURITIES,
    FormValues,
    folder_lines,
    show_size,
    spec_of,
    values_of_form,
    values_of_spec,
)
from mailhaul.web.ui.accounts import access_of
from mailhaul.web.ui.routing import PageRoute, field_error
from mailhaul.web.ui.templating import Form, is_htmx, raw_text, redirect, render

router = APIRouter(route_class=PageRoute)
SignedIn = Annotated[SessionInfo, Depends(page_access(Access.USER))]


def _error_dict(exc: Exception) -> tuple[dict[str, str], str]:
    """({field: message} for every field in error, a message for the top of the form)."""
    if isinstance(exc, FieldErrors):
        return {FIELD_ALIASES.get(name, name): text for name, text in exc.errors.items()}, ""
    field, message = field_error(exc, (*FIELDS, *FIELD_ALIASES))
    if field is None:
        return {}, message
    return {FIELD_ALIASES.get(field, field): message}, ""


def _new_values(actor: Principal) -> FormValues:
    return FormValues(owner=actor.login if actor.role is Role.USER else "")


def _posted(form: FormData, actor: Principal) -> FormValues:
    """The form as posted; a user's owner (not a field of theirs) is their own address, so a
    form shown again still names it."""
    values = values_of_form(form)
    if actor.role is Role.USER:
        values = replace(values, owner=actor.login, deliver_to="")
    return values


def _owner_placeholder(actor: Principal) -> str:
    if actor.role is Role.DOMAIN_ADMIN and actor.domains:
        return "name@" + sorted(actor.domains)[0]
    return "name@example.org"


def _form_page(
    request: Request,
    info: SessionInfo,
    values: FormValues,
    *,
    account_id: int | None = None,
    errors: dict[str, str] | None = None,
    form_error: str = "",
    report: ConnectionReport | None = None,
    status_code: int = 200,
) -> Response:
    settings = app_of(request).settings
    actor = info.principal
    base = "/accounts/new" if account_id is None else f"/accounts/{account_id}"
    return render(
        request,
        "account_form.html",
        info,
        status_code=status_code,
        active_nav="accounts",
        values=asdict(values),
        errors=errors or {},
        form_error=form_error,
        report=report,
        account_id=account_id,
        save_url=base if account_id is None else f"{base}/edit",
        test_url=f"{base}/test",
        fixed_owner=actor.role is Role.USER,
        can_set_ca=actor.is_admin,
        owner_placeholder=_owner_placeholder(actor),
        protocols=PROTOCOLS,
        securities=SECURITIES,
        default_ports=DEFAULT_PORTS,
        default_port=DEFAULT_PORTS.get(f"{values.protocol}/{values.security}", ""),
        default_interval=settings.interval,
        default_max_size=show_size(settings.max_size),
        chosen_folders=folder_lines(values.folders),
        antispam_choices=ANTISPAM_CHOICES,
        antivirus_choices=ANTIVIRUS_CHOICES,
        default_antispam=settings.filters.antispam,
        default_antivirus=settings.filters.antivirus,
        default_push=settings.push_enabled,
        labels=LABELS,
        sign_ins=_sign_ins(request),
    )


def _sign_ins(request: Request) -> list[tuple[str, str]]:
    """The sign-in methods to choose from: a password, or each registered OAuth2 provider."""
    from mailhaul.adapters.db.oauth_providers import OAuthProviderStore

    app = app_of(request)
    with app.db.read() as conn:
        providers = OAuthProviderStore().list_all(conn)
    return [("password", "Password"), *((f"oauth2:{p.id}", f"OAuth2: {p.name}") for p in providers)]


SAVE_ERRORS = (ConfigError, Forbidden)


def _checked_spec(
    request: Request,
    values: FormValues,
    actor: Principal,
    previous: AccountSpec | None,
    password: str | None,
) -> AccountSpec:
    """The form's account, with the password checked in the same round trip (every field's
    error at once: FieldErrors); an edit's empty password (None) keeps the stored one."""
    checks = FieldChecks()
    spec = None
    with checks.field():
        spec = spec_of(values, actor, app_of(request).settings, previous)
    if password is not None:
        with checks.field():
            check_password(password)
    checks.raise_any()
    assert spec is not None
    return spec


# --- add ----------------------------------------------------------------------------------------
@router.get("/accounts/new")
def new_form(request: Request, info: SignedIn) -> Response:
    """An empty form with the defaults."""
    return _form_page(request, info, _new_values(info.principal))


@router.post("/accounts/new")
def create(request: Request, info: SignedIn, form: Form) -> Response:
    """Add the account, or show the form again with the error beside its field."""
    values = _posted(form, info.principal)
    actor = info.principal
    password: str | None = raw_text(form, "password")
    if values.sign_in.startswith("oauth2:"):
        password = password or None  # OAuth2 takes none; one typed anyway is refused
    try:
        spec = _checked_spec(request, values, actor, None, password)
        account = access_of(request).add(actor, spec, password)
    except SAVE_ERRORS as exc:
        errors, message = _error_dict(exc)
        return _form_page(request, info, values, errors=errors, form_error=message, status_code=400)
    if account.sign_in_problem is not None:
        done = "Account added: press Connect to sign in at the provider."
        return redirect(request, f"/accounts/{account.id}", info, ("success", done))
    if not account.spec.active:
        done = "Account added, disabled: enable it to poll it."
        return redirect(request, f"/accounts/{account.id}", info, ("success", done))
    # A new account is due at once: its page follows that first poll.
    query = urlencode({"after": 0, "t": f"{time.time():.3f}"})
    done = "Account added: its first poll starts now."
    return redirect(request, f"/accounts/{account.id}?{query}", info, ("success", done))


@router.post("/accounts/new/test")
def test_new(request: Request, info: SignedIn, form: Form) -> Response:
    """Test the typed settings: connect, log in, count the folders; fetch nothing."""
    values = _posted(form, info.principal)
    actor = info.principal
    password = raw_text(form, "password")

    def check() -> ConnectionReport:
        spec = spec_of(values, actor, app_of(request).settings, None)
        if not password:
            raise FieldError("password", "type the password to test the connection")
        return access_of(request).check_new(actor, spec, password)

    return _test_answer(request, info, values, None, check)


# --- edit ---------------------------------------------------------------------------------------
@router.get("/accounts/{account_id:int}/edit")
def edit_form(request: Request, account_id: int, info: SignedIn) -> Response:
    """The form filled with the stored settings (never the password)."""
    account = access_of(request).get(info.principal, account_id)
    return _form_page(request, info, values_of_spec(account.spec), account_id=account_id)


@router.post("/accounts/{account_id:int}/edit")
def save(request: Request, account_id: int, info: SignedIn, form: Form) -> Response:
    """Save the settings; an empty password keeps the stored one."""
    access = access_of(request)
    actor = info.principal
    previous = access.get(actor, account_id)
    values = _posted(form, info.principal)
    password = raw_text(form, "password") or None
    try:
        spec = _checked_spec(request, values, actor, previous.spec, password)
        access.edit(actor, account_id, spec, password)
    except SAVE_ERRORS as exc:
        errors, message = _error_dict(exc)
        return _form_page(
            request,
            info,
            values,
            account_id=account_id,
            errors=errors,
            form_error=message,
            status_code=400,
        )
    return redirect(request, f"/accounts/{account_id}", info, ("success", "Saved."))


@router.post("/accounts/{account_id:int}/test")
def test_stored(request: Request, account_id: int, info: SignedIn, form: Form) -> Response:
    """Test the form's settings, with the stored password unless a new one is typed."""
    access = access_of(request)
    actor = info.principal
    previous = access.get(actor, account_id)
    values = _posted(form, info.principal)
    password = raw_text(form, "password") or None

    def check() -> ConnectionReport:
        spec = spec_of(values, actor, app_of(request).settings, previous.spec)
        return access.check_stored(actor, account_id, spec, password)

    return _test_answer(request, info, values, account_id, check)


def _test_answer(
    request: Request,
    info: SessionInfo,
    values: FormValues,
    account_id: int | None,
    check: Callable[[], ConnectionReport],
) -> Response:
    """The result inline (htmx), or on the form shown again (without JavaScript)."""
    report: ConnectionReport | None = None
    errors: dict[str, str] = {}
    message = ""
    try:
        report = check()
    except SAVE_ERRORS as exc:
        errors, message = _error_dict(exc)
    if is_htmx(request):
        return render(
            request,
            "_test_result.html",
            info,
            report=report,
            errors=errors,
            form_error=message,
            chosen_folders=folder_lines(values.folders),
        )
    return _form_page(
        request,
        info,
        values,
        account_id=account_id,
        errors=errors,
        form_error=message,
        report=report,
        status_code=400 if errors or message else 200,
    )
