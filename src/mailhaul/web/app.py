"""The FastAPI application of `mailhaul serve`: `/healthz` and `/metrics` for now."""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mailhaul.bootstrap import App
from mailhaul.domain.errors import MailhaulError
from mailhaul.services.metrics import Metrics
from mailhaul.services.status import StatusService

logger = logging.getLogger(__name__)


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
    status = StatusService(app.db)
    metrics = metrics or Metrics(live=status.live)
    api = FastAPI(title="mailhaul", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.mailhaul = app
    api.state.metrics = metrics

    @api.get("/healthz")
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
    return api
