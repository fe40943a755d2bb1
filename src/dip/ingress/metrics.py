"""``GET /metrics``: the node's Prometheus metrics (API contract section 6; dip.metrics), to the
addresses in ``--metrics-allow`` (default: loopback) or to an operator's key; 403 to anyone else."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dip.ingress.auth import node
from dip.metrics import CONTENT_TYPE
from dip.node import Node

router = APIRouter(tags=["Operations"])


def may_read(dip: Node, host: str | None, key: str | None) -> bool:
    """Whether a caller from ``host`` with ``key`` may read the metrics (shared by the API port and
    the metrics port, dip.ingress.ops_server)."""
    if host is not None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and any(address in ipaddress.ip_network(n) for n in dip.settings.metrics_allow):
            return True
    return key is not None and dip.state.directory.operator_for_key(key) is not None


@router.get("/metrics", response_class=Response, responses={
    200: {"description": "Prometheus text exposition", "content": {CONTENT_TYPE: {}}},
    403: {"description": "not from --metrics-allow, and no operator key"},
})
async def metrics(request: Request) -> Response:
    """This node's metrics: messages accepted and refused, deliveries by outcome, delivery latency,
    queue depths, API requests."""
    if not may_read(node(request), request.client.host if request.client else None,
                    request.headers.get("x-api-key")):
        return JSONResponse({"detail": "metrics are for --metrics-allow addresses or an operator's key"},
                            status_code=403)
    return Response(node(request).metrics.exposition(), media_type=CONTENT_TYPE)
