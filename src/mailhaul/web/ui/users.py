"""Users and their roles and domains (admins: everyone; domain admins: their domains' users),
one's own password, and API keys (shown once at creation, stored hashed, revocable)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from mailhaul.adapters.db.users import ApiKey, User
from mailhaul.domain.access import Forbidden, Principal, Role
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.validation import FieldChecks, FieldError, FieldErrors
from mailhaul.services.users import SessionInfo, UserChanges, UserService, check_user_password
from mailhaul.web.auth import Access, app_of, page_access
from mailhaul.web.ui.login import throttle_of
from mailhaul.web.ui.routing import PageRoute, field_error
from mailhaul.web.ui.templating import (
    Form,
    checked,
    local_path,
    raw_text,
    redirect,
    render,
    text,
)

router = APIRouter(route_class=PageRoute)
Manager = Annotated[SessionInfo, Depends(page_access(Access.MANAGER))]
SignedIn = Annotated[SessionInfo, Depends(page_access(Access.USER))]

USER_FIELDS = ("login", "role", "domains", "password", "active", "name")
ROLE_LABELS = {
    Role.ADMIN: "Admin: everything",
    Role.DOMAIN_ADMIN: "Domain admin: the users and accounts of their domains",
    Role.USER: "User: their own accounts",
}
ERRORS = (ConfigError, Forbidden)


def users_of(request: Request) -> UserService:
    """The user use cases."""
    return app_of(request).users


def roles_for(actor: Principal) -> list[tuple[str, str]]:
    """The roles ``actor`` may hand out, as (value, label)."""
    roles = list(Role) if actor.is_admin else [Role.USER]
    return [(str(role), ROLE_LABELS[role]) for role in roles]


def split_domains(raw: str) -> list[str]:
    """``example.org, example.net`` (commas, blanks or lines) → a list."""
    return [part for part in raw.replace(",", " ").split() if part][:100]


def _role(form: FormData, actor: Principal) -> Role:
    raw = text(form, "role")
    if raw not in {value for value, _ in roles_for(actor)}:
        raise FieldError("role", "choose one of the roles offered")
    return Role(raw)


def _checked_role(form: FormData, actor: Principal, password: str | None) -> Role:
    """The role chosen; when it is not one offered, the password's error too (the service
    checks the other fields once there is a role)."""
    checks = FieldChecks()
    role = None
    with checks.field():
        role = _role(form, actor)
    if role is None and password is not None:
        with checks.field():
            check_user_password(password)
    checks.raise_any()
    assert role is not None
    return role


def _errors(exc: Exception) -> tuple[dict[str, str], str]:
    if isinstance(exc, FieldErrors):
        return dict(exc.errors), ""
    field, message = field_error(exc, USER_FIELDS)
    return ({field: message}, "") if field else ({}, message)


# --- the list -----------------------------------------------------------------------------------
@router.get("/users")
def user_list(request: Request, info: Manager) -> Response:
    """The users the actor manages."""
    users = users_of(request).list_users(info.principal)
    return render(request, "users.html", info, active_nav="users", users=users)


# --- add ----------------------------------------------------------------------------------------
def _new_page(
    request: Request,
    info: SessionInfo,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    form_error: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "user_new.html",
        info,
        status_code=status_code,
        active_nav="users",
        values=values,
        errors=errors or {},
        form_error=form_error,
        roles=roles_for(info.principal),
    )


@router.get("/users/new")
def new_user_form(request: Request, info: Manager) -> Response:
    """An empty user form."""
    return _new_page(request, info, {"login": "", "role": str(Role.USER), "domains": ""})


@router.post("/users/new")
def create_user(request: Request, info: Manager, form: Form) -> Response:
    """Create the user, or show the form again with the error beside its field."""
    actor = info.principal
    values = {k: text(form, k) for k in ("login", "role", "domains")}
    password = raw_text(form, "password")
    try:
        role = _checked_role(form, actor, password)
        user = users_of(request).add(
            actor, values["login"], role, password, split_domains(values["domains"])
        )
    except ERRORS as exc:
        errors, message = _errors(exc)
        if isinstance(exc, Forbidden) and not errors:
            errors, message = {"login": message}, ""
        return _new_page(request, info, values, errors, message, status_code=400)
    return redirect(request, f"/users/{user.id}", info, ("success", f"Added {user.login}."))


# --- edit ---------------------------------------------------------------------------------------
def _edit_page(
    request: Request,
    info: SessionInfo,
    user: User,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str = "",
    status_code: int = 200,
) -> Response:
    shown = values or {
        "role": str(user.role),
        "domains": ", ".join(sorted(user.domains)),
        "active": "on" if user.active else "",
    }
    keys = users_of(request).keys(info.principal, user.id)
    return render(
        request,
        "user_edit.html",
        info,
        status_code=status_code,
        active_nav="users",
        target=user,
        values=shown,
        errors=errors or {},
        form_error=form_error,
        roles=roles_for(info.principal),
        keys=keys,
        back=f"/users/{user.id}",
        key_url=f"/users/{user.id}/keys",
    )


@router.get("/users/{user_id:int}")
def edit_user_form(request: Request, user_id: int, info: Manager) -> Response:
    """A user's role, domains, active flag, a new password, and their API keys."""
    user = users_of(request).get(info.principal, user_id)
    if user.id == info.principal.user_id and not info.principal.is_admin:
        return redirect(request, "/me")
    return _edit_page(request, info, user)


@router.post("/users/{user_id:int}")
def save_user(request: Request, user_id: int, info: Manager, form: Form) -> Response:
    """Save a user's role, domains and active flag (and password, when one is typed)."""
    actor = info.principal
    service = users_of(request)
    user = service.get(actor, user_id)
    values = {
        "role": text(form, "role"),
        "domains": text(form, "domains"),
        "active": "on" if checked(form, "active") else "",
    }
    password = raw_text(form, "password") or None
    try:
        role = _checked_role(form, actor, password)
        changes = UserChanges(
            role=role,
            domains=split_domains(values["domains"]),
            password=password,
            active=checked(form, "active"),
        )
        service.edit(actor, user_id, changes)
    except ERRORS as exc:
        errors, message = _errors(exc)
        return _edit_page(request, info, user, values, errors, message, status_code=400)
    if user.id == actor.user_id and password is not None:
        return redirect(request, "/login?changed=1")  # a new password ends one's sessions
    return redirect(request, "/users", info, ("success", f"Saved {user.login}."))


# --- delete -------------------------------------------------------------------------------------
@router.get("/users/{user_id:int}/delete")
def delete_user_page(request: Request, user_id: int, info: Manager) -> Response:
    """Ask before deleting a user."""
    user = users_of(request).get(info.principal, user_id)
    return render(request, "user_delete.html", info, active_nav="users", target=user)


@router.post("/users/{user_id:int}/delete")
def delete_user(request: Request, user_id: int, info: Manager) -> Response:
    """Delete a user (their retrieval accounts stay)."""
    service = users_of(request)
    user = service.get(info.principal, user_id)
    try:
        service.delete(info.principal, user_id)
    except Forbidden as exc:
        return redirect(request, f"/users/{user_id}", info, ("error", str(exc)))
    return redirect(
        request,
        "/users",
        info,
        ("success", f"Deleted {user.login}; the retrieval accounts they own stay."),
    )


# --- API keys -------------------------------------------------------------------------------------
def _key_created(
    request: Request, info: SessionInfo, key: ApiKey, secret: str, back: str
) -> Response:
    return render(
        request, "key_created.html", info, active_nav="", key=key, secret=secret, back=back
    )


def _create_key(
    request: Request, info: SessionInfo, user_id: int, form: FormData, back: str
) -> Response:
    try:
        key, secret = users_of(request).create_key(info.principal, user_id, text(form, "name"))
    except ConfigError as exc:
        return redirect(request, back, info, ("error", f"Key not created: {exc}"))
    return _key_created(request, info, key, secret, back)


@router.post("/users/{user_id:int}/keys")
def create_user_key(request: Request, user_id: int, info: Manager, form: Form) -> Response:
    """A new API key for a user within reach; its secret is shown once."""
    return _create_key(request, info, user_id, form, f"/users/{user_id}")


@router.post("/keys/{key_id:int}/revoke")
def revoke_key(request: Request, key_id: int, info: SignedIn, form: Form) -> Response:
    """Revoke one of one's own keys (or, for managers, of a user within reach)."""
    users_of(request).revoke_key(info.principal, key_id)
    back = local_path(text(form, "back"), "/me")
    return redirect(request, back, info, ("success", "The API key is revoked."))


# --- one's own settings ---------------------------------------------------------------------------
def _me_page(
    request: Request,
    info: SessionInfo,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    service = users_of(request)
    keys = service.keys(info.principal) if info.principal.user_id else []
    notices = service.get(info.principal, info.user.id).notices if info.user.id else "mailbox"
    return render(
        request,
        "me.html",
        info,
        status_code=status_code,
        active_nav="me",
        keys=keys,
        notices=notices,
        errors=errors or {},
        back="/me",
        key_url="/me/keys",
    )


@router.get("/me")
def me(request: Request, info: SignedIn) -> Response:
    """One's own password and API keys."""
    return _me_page(request, info)


@router.post("/me/keys")
def create_own_key(request: Request, info: SignedIn, form: Form) -> Response:
    """A new API key for oneself; its secret is shown once."""
    return _create_key(request, info, info.user.id, form, "/me")


@router.post("/me/notices")
def set_notices(request: Request, info: SignedIn, form: Form) -> Response:
    """Whether notices about one's failing accounts come into one's mailbox."""
    try:
        users_of(request).set_notices(info.principal, text(form, "notices"))
    except ConfigError as exc:
        field, message = field_error(exc, ("notices",))
        return _me_page(request, info, {"notices": message if field else str(exc)}, 400)
    return redirect(request, "/me", info, ("success", "Saved how you are told about trouble."))


@router.post("/me/password")
async def change_password(request: Request, info: SignedIn, form: Form) -> Response:
    """Change one's own password (the current one is asked for; failures are throttled)."""
    service = users_of(request)
    throttle = throttle_of(request)
    client = request.client.host if request.client else "unknown"
    login = info.user.login
    if throttle.retry_after(login, client) > 0:
        errors = {"current": "Too many wrong passwords: try again later."}
        return await run_in_threadpool(_me_page, request, info, errors, 429)
    current = raw_text(form, "current")
    new, again = raw_text(form, "new_password"), raw_text(form, "new_password_again")
    if await run_in_threadpool(service.authenticate, login, current) is None:
        throttle.failed(login, client)
        return await run_in_threadpool(
            _me_page, request, info, {"current": "This is not your current password."}, 400
        )
    try:
        if new != again:
            raise FieldError("new_password", "the two new passwords differ")
        await run_in_threadpool(
            lambda: service.edit(info.principal, info.user.id, UserChanges(password=new))
        )
    except ConfigError as exc:
        field, message = field_error(exc, ("password", "new_password"))
        errors = {"new_password": message} if field else {"new_password": str(exc)}
        return await run_in_threadpool(_me_page, request, info, errors, 400)
    return redirect(request, "/login?changed=1")
