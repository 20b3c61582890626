"""`/api/v1`: a FastAPI app of its own, mounted by `mailhaul.web.app.create_app`.

Every route declares its access with ``Depends(api_access(Access.…))`` (a test walks them);
callers authenticate with ``Authorization: Bearer mh_…``. Errors are JSON (see `errors`).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from mailhaul.bootstrap import App
from mailhaul.services.metrics import Metrics
from mailhaul.web.api.v1 import (
    account_actions,
    accounts,
    incidents,
    keys,
    oauth,
    quarantine,
    service,
    settings,
    users,
)
from mailhaul.web.api.v1.deps import bearer
from mailhaul.web.api.v1.errors import install_error_handlers
from mailhaul.web.auth import public

PREFIX = "/api/v1"
DESCRIPTION = """\
Retrieval accounts, their runs and logs, users and API keys of mailhaul.

Authenticate with an API key: `Authorization: Bearer mh_…`. Admins reach everything; domain
admins the accounts and users of their domains; users their own accounts. A record out of
reach answers 404, as a missing one does. Errors are
`{"error": {"code": "…", "message": "…", "field": "… or null"}}`.
"""


def create_api(app: App, metrics: Metrics) -> FastAPI:
    """The API app; its OpenAPI document is at ``/api/v1/openapi.json``."""
    api = FastAPI(
        title="mailhaul API",
        version="1",
        description=DESCRIPTION,
        servers=[{"url": PREFIX}],
        openapi_url=None,  # served below, with its access declared like every route
        docs_url=None,
        redoc_url=None,
    )
    api.state.mailhaul = app
    api.state.metrics = metrics
    install_error_handlers(api)
    for module in (
        accounts,
        account_actions,
        quarantine,
        incidents,
        users,
        keys,
        service,
        settings,
        oauth,
    ):
        api.include_router(module.router, dependencies=[Depends(bearer)])

    @api.get("/openapi.json", include_in_schema=False, dependencies=[Depends(public())])
    def openapi_document() -> JSONResponse:
        """The OpenAPI document of this API."""
        return JSONResponse(api.openapi())

    return api
