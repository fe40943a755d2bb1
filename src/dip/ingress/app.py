"""The ASGI application: routes, the node's life cycle, and error bodies that are never 500s."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from dip import __version__
from dip.config import Settings
from dip.ingress import (
    admin,
    archive,
    audit,
    certificates,
    errors,
    metrics,
    probes,
    pubconfig,
    redrive,
    registry,
    search,
    send,
    signing_key,
    status_messages,
    submission_limits,
    views,
)
from dip.ingress.activity import ActivityLogging
from dip.ingress.bodies import OperatorBodyLimit
from dip.ingress.gateway import ForwardedClientCert
from dip.ingress.openapi_docs import complete_responses
from dip.ingress.ops_server import OpsServer
from dip.ingress.paths import CaseInsensitivePaths, RequestIds
from dip.node import Node

log = logging.getLogger("dip.ingress")

DESCRIPTION = """
The Data Integration Platform for GB Market-wide Half-Hourly Settlement.

Participant routes follow the DIP API v2.1.0 (*DIP - Send Messages & Receive Publications*):
sign every request with the `X-DIP-*` headers and send your `X-API-Key`.
Operator routes live under `/admin` and take the admin API key.
"""


def create_app(
    settings: Settings,
    dip: Node | None = None,
    on_started: Callable[[Node], Awaitable[None]] | None = None,
) -> FastAPI:
    node = dip or Node(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await node.start()
        app.state.node = node
        ops = OpsServer(node, settings.host, settings.metrics_port) if settings.metrics_port is not None else None
        if ops is not None:
            await ops.start()
        if on_started is not None:
            await on_started(node)
        try:
            yield
        finally:
            if ops is not None:
                await ops.stop()
            await node.stop()

    app = FastAPI(
        title="DIP - Send Messages & Receive Publications",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.include_router(send.router)
    app.include_router(admin.router)
    app.include_router(registry.router)
    app.include_router(views.router)
    app.include_router(pubconfig.router)
    app.include_router(pubconfig.public_router)
    app.include_router(archive.router)
    app.include_router(redrive.router)
    app.include_router(search.router)
    app.include_router(search.admin_router)
    app.include_router(status_messages.router)
    app.include_router(audit.router)
    app.include_router(certificates.router)
    app.include_router(submission_limits.router)
    app.include_router(signing_key.router)
    app.include_router(metrics.router)
    app.include_router(probes.router)

    errors.install(app, settings.dip_id)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_responses(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(ForwardedClientCert, settings=settings)
    app.add_middleware(OperatorBodyLimit)
    app.add_middleware(CaseInsensitivePaths)
    app.add_middleware(ActivityLogging, node=node)  # every request, the refusals above included, as sent
    app.add_middleware(RequestIds)  # outermost: refusals made by the middlewares above carry it too
    return app
