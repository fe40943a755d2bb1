"""The ASGI application: routes, the service's life cycle, and error bodies that are never 500s."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dip import __version__
from dip.api import admin, monitoring, participant, registry, status, webhooks
from dip.api.common import error_response
from dip.api.openapi_docs import complete_responses
from dip.api.paths import CaseInsensitivePaths
from dip.codes import Code
from dip.config import Settings
from dip.exceptions import StoreError, UnstorableValue
from dip.service import DipService

log = logging.getLogger("dip.api")

DESCRIPTION = """
The Data Integration Platform for GB Market-wide Half-Hourly Settlement.

Participant routes follow the DIP API v2.1.0 (*DIP - Send Messages & Receive Publications*):
sign every request with the `X-DIP-*` headers and send your `X-API-Key`.
Operator routes live under `/admin` and take the admin API key.
"""


def create_app(
    settings: Settings,
    dip: DipService | None = None,
    on_started: Callable[[DipService], Awaitable[None]] | None = None,
) -> FastAPI:
    service = dip or DipService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        app.state.dip = service
        if on_started is not None:
            await on_started(service)
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="DIP - Send Messages & Receive Publications",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.include_router(participant.router)
    app.include_router(admin.router)
    app.include_router(registry.router)
    app.include_router(monitoring.router)
    app.include_router(webhooks.router)
    app.include_router(status.router)

    @app.get("/healthz", tags=["Operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "environment": settings.environment}

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'/'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=400)

    @app.exception_handler(UnstorableValue)
    async def unstorable(request: Request, exc: UnstorableValue) -> Response:
        log.warning("refused a value on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": [f"a value in the request cannot be stored: {exc}"]}, status_code=400)

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, exc: StoreError) -> Response:
        # The database is down or failing: nothing was acknowledged, so the sender may retry.
        log.error("store error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            request.app.state.dip, 503, Code.PROCESSING_FAILED,
            "503 Service Unavailable: the DIP cannot reach its database; nothing in this request was "
            "accepted. Retry with back-off.",
            headers={"Retry-After": "5"},
        )

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_responses(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(CaseInsensitivePaths)
    return app
