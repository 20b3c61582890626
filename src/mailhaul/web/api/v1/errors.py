"""Errors as the API answers them: ``{"error": {"code", "message", "field"}}``.

| status | code | when |
|---|---|---|
| 400 | malformed_json | the body is not JSON |
| 401 | unauthenticated | no API key, or an unknown or revoked one (``WWW-Authenticate: Bearer``) |
| 403 | forbidden | the caller's role may not do this |
| 404 | not_found | no such record, or one outside the caller's reach |
| 409 | busy / inactive | the account is being polled / is disabled |
| 422 | validation_error | a field is invalid; ``field`` names it |
| 503 | unavailable | the database cannot be reached |
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailhaul.domain.access import Forbidden
from mailhaul.domain.errors import (
    AccountBusy,
    ConfigError,
    MailhaulError,
    NotFound,
    OAuthError,
    SignInNeeded,
    StorageError,
    TokenEndpointDown,
)
from mailhaul.domain.validation import FieldError, FieldErrors
from mailhaul.web.api.v1.schemas import ErrorBody
from mailhaul.web.auth import AccessDenied, NotAuthenticated

logger = logging.getLogger(__name__)

_FIELD_PREFIX = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)
# Forbidden errors that name a field the caller set are input errors (422), not role refusals.
_FORBIDDEN_FIELDS = frozenset({"owner", "deliver_to"})
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
# The services name fields as the command line does; the API's bodies name some otherwise.
_API_FIELDS = {"folder": "folders"}


class AccountInactive(MailhaulError):
    """Raised when a fetch is asked of a disabled or paused account (nothing would poll it)."""


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The JSON error body every API error uses."""
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _split_field(message: str) -> tuple[str | None, str]:
    match = _FIELD_PREFIX.match(message)
    return (match.group(1), match.group(2)) if match else (None, message)


def _field_of(loc: Sequence[Any]) -> str | None:
    names = [str(part) for part in loc if isinstance(part, str) and part not in _LOCATIONS]
    return names[0] if names else None


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    if not errors:
        return error_response(422, "validation_error", "the request is invalid")
    first = errors[0]
    field = _field_of(first.get("loc", ()))
    detail = str(first.get("msg", "is invalid"))
    if first.get("type") == "missing":
        detail = "is required"
    if field:
        message = f"{field}: {detail}"
    elif tuple(first.get("loc", ()))[:1] == ("body",):
        message = f"the request body must be a JSON object (application/json): {detail}"
    else:
        message = detail
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return error_response(422, "validation_error", message, field)


def _mailhaul_response(exc: MailhaulError) -> JSONResponse:
    if isinstance(exc, NotFound):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, FieldError):
        name = _API_FIELDS.get(exc.field, exc.field)
        errors = exc.errors if isinstance(exc, FieldErrors) else {exc.field: exc.message}
        every = "; ".join(f"{_API_FIELDS.get(f, f)}: {m}" for f, m in errors.items())
        return error_response(422, "validation_error", every, name)
    if isinstance(exc, Forbidden):
        field, _ = _split_field(str(exc))
        if field in _FORBIDDEN_FIELDS:
            return error_response(422, "validation_error", str(exc), field)
        return error_response(403, "forbidden", str(exc))
    if isinstance(exc, AccountBusy):
        return error_response(409, "busy", str(exc))
    if isinstance(exc, AccountInactive):
        return error_response(409, "inactive", str(exc))
    if isinstance(exc, SignInNeeded):
        return error_response(409, "sign_in_needed", str(exc))
    if isinstance(exc, TokenEndpointDown):
        return error_response(502, "provider_unavailable", str(exc))
    if isinstance(exc, OAuthError):
        return error_response(502, "provider_error", str(exc))
    if isinstance(exc, StorageError) or (
        isinstance(exc, ConfigError) and str(exc).startswith("cannot open database")
    ):
        logger.warning("api: database unavailable: %s", exc)
        return error_response(503, "unavailable", "the database is unavailable; try again")
    if isinstance(exc, ConfigError):
        field, _ = _split_field(str(exc))
        return error_response(422, "validation_error", str(exc), field)
    logger.error("api: unexpected %s: %s", type(exc).__name__, exc)
    return error_response(500, "internal_error", "an internal error occurred")


def install_error_handlers(api: FastAPI) -> None:
    """Register the JSON error handlers on the API app (and only there)."""

    async def not_authenticated(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(
            401, "unauthenticated", str(exc), headers={"WWW-Authenticate": "Bearer"}
        )

    async def access_denied(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(403, "forbidden", str(exc))

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_response(exc)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        message = "no such API route" if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, code, message, headers=exc.headers)

    async def mailhaul_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MailhaulError)
        return _mailhaul_response(exc)

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.error("api: unexpected %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "an internal error occurred")

    api.add_exception_handler(Exception, unexpected)
    api.add_exception_handler(NotAuthenticated, not_authenticated)
    api.add_exception_handler(AccessDenied, access_denied)
    api.add_exception_handler(RequestValidationError, invalid_request)
    api.add_exception_handler(StarletteHTTPException, http_error)
    api.add_exception_handler(MailhaulError, mailhaul_error)


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


UNAUTHENTICATED = {
    401: {
        **_doc("No valid API key."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    }
}
FORBIDDEN = {403: _doc("The caller's role does not allow this.")}
NOT_FOUND = {404: _doc("No such record within the caller's reach.")}
INVALID = {422: _doc("A field is invalid: `error.field` names it.")}
MALFORMED = {400: _doc("The body is not valid JSON.")}
BUSY = {409: _doc("The account is being polled, or is disabled.")}
PROVIDER = {
    502: _doc("The OAuth2 provider could not be reached, or refused."),
    409: _doc("The sign-in was declined or expired."),
}


UNAVAILABLE = {503: _doc("The database cannot be reached; try again.")}


def responses(*groups: Mapping[int, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a route: 401, 503, and the groups given."""
    merged: dict[int | str, dict[str, Any]] = {}
    for group in (UNAUTHENTICATED, UNAVAILABLE, *groups):
        for status, doc in group.items():
            merged[status] = doc
    return merged
