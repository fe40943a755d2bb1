"""The operator's views of delivery (this project's own, beside API contract section 2).

``GET /admin/transactions/{transactionId}``: a message as archived and what became of it for
each recipient (E2E 4.6 egress outcomes: delivered, rejected, failed, dead, or still pending),
with the status messages the DIP sent its sender about it. ``GET /admin/queues``: each recipient
webhook's backlog, the age of its oldest waiting message, and its backoff.
``GET /admin/undelivered``: the dead-letter queue (FS 5.5.8), and likewise the deliveries a
recipient's webhook refused for good (failed) or rejected, oldest first, a page at a time.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query
from starlette.responses import Response

from dip import ids
from dip.ingress.admin import Admin, AdminRoute
from dip.ingress.errors import JSON
from dip.queue import IDLE, DeliveryState

router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)


def _at(micros: int | None) -> str | None:
    return None if micros is None else ids.precise_timestamp(micros)


@router.get("/transactions/{transaction_id}", response_class=Response, responses={
    200: {"description": "the message and its deliveries", "content": {JSON: {}}},
    404: {"description": "no message with this transaction ID"},
})
async def transaction(transaction_id: str, dip: Admin,
                      payload: Annotated[bool, Query(description="include the payload as archived")] = False,
                      ) -> Response:
    """A message as the DIP accepted it and, per recipient, what became of it."""
    found_message = await dip.views.transaction(transaction_id)
    if found_message is None:
        raise HTTPException(404, f"no message with transactionID '{transaction_id[:80]}'")
    row, history = found_message
    found: dict[str, Any] = {
        "transactionID": row.transaction_id,
        "interfaceID": row.interface_id,
        "eventCode": row.event_code,
        "schemaVersion": row.schema_version,
        "senderID": row.sender_id,
        "senderRole": row.sender_role,
        "connectionProviderID": row.dcp_id,
        "senderUniqueReference": row.sur,
        "correlationID": row.correlation_id,
        "MPANCore": row.mpan,
        "receivedAt": _at(row.received_at),
        "deliveries": [
            {"recipientID": d.recipient_id, "role": d.role, "kind": d.kind, "state": d.state,
             "attempts": d.attempts, "acceptedAt": _at(d.accepted_at), "doneAt": _at(d.done_at),
             "lastStatus": d.last_status, "lastError": d.last_error}
            for d in history
        ],
    }
    if payload:
        found["payload"] = orjson.Fragment(row.payload)  # as stored: the validated JSON
    return Response(orjson.dumps(found), media_type=JSON)


@router.get("/queues", response_class=Response, responses={
    200: {"description": "every recipient queue (or one recipient's)", "content": {JSON: {}}},
})
async def queues(dip: Admin, recipient: Annotated[str | None, Query(
        description="only this participant's queues", max_length=20)] = None) -> Response:
    """Each recipient webhook's queue: backlog, oldest waiting message, backoff, lease."""
    return Response(orjson.dumps({"queues": [
        {"queue": q.queue, "recipientID": q.recipient_id, "interfaceID": q.interface_id, "pending": q.pending,
         "oldestPendingAcceptedAt": _at(q.head_accepted_at), "headAttempts": q.head_attempts,
         "lastStatus": q.head_status, "lastError": q.head_error, "retries": q.retries,
         "idle": q.next_attempt_at == IDLE,
         "nextAttemptAt": None if q.next_attempt_at == IDLE else _at(q.next_attempt_at),
         "leaseOwner": q.lease_owner, "leaseUntil": _at(q.lease_until)}
        for q in await dip.views.queues(recipient)
    ]}), media_type=JSON)


@router.get("/undelivered", response_class=Response, responses={
    200: {"description": "one page of undelivered deliveries, oldest first", "content": {JSON: {}}},
    400: {"description": "a parameter out of range, or a channel that is no interface ID"},
})
async def undelivered(
    dip: Admin,
    state: Annotated[Literal["dead", "failed", "rejected"], Query(
        description="dead: dead-lettered (not delivered in time); failed: refused for good by the webhook "
                    "(401, 403, 404, 405, 406, 413, 505, or not a public address); rejected: refused by the "
                    "recipient as invalid (400, or named in a 207)")] = "dead",
    recipient: Annotated[str | None, Query(description="only this participant's", max_length=20)] = None,
    channel: Annotated[str | None, Query(description="only messages of this interface, e.g. IF-021",
                                         max_length=20)] = None,
    after: Annotated[int, Query(description="the cursor: `next` of the previous page", ge=0,
                                le=2 ** 63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Deliveries that ended without reaching their recipient, in the order they were queued."""
    interface_id = channel.upper() if channel is not None else None
    if interface_id is not None and not ids.is_interface_id(interface_id):
        raise HTTPException(400, f"channel '{channel}' is not an interface ID like IF-021")
    rows = await dip.views.undelivered(DeliveryState(state), after, limit, recipient, interface_id)
    return Response(orjson.dumps({
        "deliveries": [
            {"transactionID": u.transaction_id, "interfaceID": u.interface_id, "senderID": u.sender_id,
             "recipientID": u.recipient_id, "role": u.role, "kind": u.kind, "state": u.state,
             "attempts": u.attempts, "acceptedAt": _at(u.accepted_at), "doneAt": _at(u.done_at),
             "lastStatus": u.last_status, "lastError": u.last_error}
            for u in rows
        ],
        "next": rows[-1].id if len(rows) == limit else None,
    }), media_type=JSON)


@router.get("/jobs", response_class=Response, responses={
    200: {"description": "the scheduled jobs: when each last ran, what it did, when it is next due, who runs it now",
          "content": {JSON: {}}}})
async def jobs(dip: Admin) -> Response:
    """The jobs every node schedules and one at a time runs (the retention purge, ...)."""
    return Response(orjson.dumps({"jobs": [
        {"name": j.name, "lastRunAt": _at(j.last_run_at), "lastResult": j.last_result, "nextRunAt": _at(j.next_run_at),
         "runningOn": j.lease_owner if j.lease_until is not None else None}
        for j in await dip.views.jobs()]}), media_type=JSON)


@router.post("/jobs/{name}/run", status_code=202, response_class=Response, responses={
    202: {"description": "the job runs at the next poll of whichever node takes it (GET /admin/jobs shows it)"},
    404: {"description": "no such job"}})
async def run_job(name: str, dip: Admin) -> Response:
    """Run a scheduled job now, e.g. the retention purge after a channel's retention was shortened."""
    if not await dip.views.run_job(name, int(time.time() * 1_000_000)):
        raise HTTPException(404, f"no job '{name}' (GET /admin/jobs lists them)")
    return Response(status_code=202)
