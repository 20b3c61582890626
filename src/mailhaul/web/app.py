"""The FastAPI application of `mailhaul serve`: pages, `/api/v1`, `/healthz`, `/metrics`."""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailhaul.bootstrap import App
from mailhaul.domain.errors import MailhaulError
from mailhaul.services.metrics import Metrics
from mailhaul.web.auth import public

logger = logging.getLogger(__name__)


SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        b"object-src 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class _SecurityHeaders:
    """Adds the security headers to every HTTP response."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.inner(scope, receive, send_with_headers)


class _RefreshThenServe:
    """Reads the live gauges in a worker thread, then lets prometheus-client answer.

    prometheus-client's ASGI app collects on the event loop; the database read behind the
    gauges must not block it.
    """

    def __init__(self, metrics: Metrics, inner: ASGIApp) -> None:
        self.metrics = metrics
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await anyio.to_thread.run_sync(self.metrics.refresh)
        await self.inner(scope, receive, send)


def create_app(app: App, metrics: Metrics | None = None) -> FastAPI:
    """The HTTP app over ``app``'s database; ``metrics`` is the serve process's own.

    Without ``metrics`` a fresh `Metrics` is made (its counters then stay at zero).
    """
    from mailhaul.web.api.v1 import create_api
    from mailhaul.web.ui import install_pages

    status = app.status
    metrics = metrics or Metrics(live=status.live)
    api = FastAPI(title="mailhaul", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.mailhaul = app
    api.state.metrics = metrics
    api.add_middleware(_SecurityHeaders)

    @api.get("/healthz", dependencies=[Depends(public())])
    def healthz() -> JSONResponse:
        """200 with workers and queue lag while the database answers, else 503."""
        try:
            health = status.health()
        except (MailhaulError, SQLAlchemyError) as exc:
            logger.warning("healthz: database unavailable: %s", exc)
            body: dict[str, Any] = {"status": "error", "database": "unavailable"}
            return JSONResponse(body, status_code=503)
        body = {
            "status": "ok",
            "database": "ok",
            "workers": health.workers,
            "queue_lag_seconds": round(health.queue_lag_seconds, 3),
        }
        return JSONResponse(body)

    # A route, not a Mount: a mounted app answers /metrics with a redirect to /metrics/.
    exporter = _RefreshThenServe(metrics, make_asgi_app(registry=metrics.registry))
    api.router.routes.append(Route("/metrics", exporter, methods=["GET"], name="metrics"))
    api.mount("/api/v1", create_api(app, metrics), name="api")
    install_pages(api)
    return api
