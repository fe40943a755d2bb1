"""Probes (API contract section 6): ``GET /healthz``, liveness (the process answers), and
``GET /readyz``, readiness (the node can serve: its database answers and, where it delivers, its
delivery loop runs). A load balancer sends traffic only to ready nodes; an orchestrator restarts
a node that is not live."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from dip.ingress.auth import node

router = APIRouter(tags=["Operations"])


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """Liveness: 200 while the process serves HTTP."""
    return {"status": "ok", "environment": node(request).settings.environment}


@router.get("/readyz", responses={503: {"description": "not ready, with the reasons"}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the database answers and the delivery loop (where there is one) runs."""
    problems = await node(request).readiness()
    return JSONResponse({"status": "ready" if not problems else "not ready", "problems": problems},
                        status_code=503 if problems else 200)
