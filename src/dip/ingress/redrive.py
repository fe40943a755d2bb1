"""``POST /admin/redrive``: the operator puts undelivered deliveries back on their queues
(API contract section 4; dip.archive.redrive)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from dip import ids
from dip.archive.redrive import Redrive
from dip.ingress.admin import Admin, AdminRoute

router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)


class RedriveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipientId: Annotated[str | None, Field(pattern=ids.PARTICIPANT_ID_PATTERN)] = None
    channel: Annotated[str | None, Field(pattern=ids.INTERFACE_ID_PATTERN)] = None
    from_: Annotated[datetime | None, Field(alias="from", description="ISO 8601 with offset; queued from")] = None
    to: Annotated[datetime | None, Field(description="ISO 8601 with offset; queued up to (inclusive)")] = None
    states: list[Literal["dead", "failed", "rejected"]] = Field(default=["dead"], min_length=1)


class RedriveOut(BaseModel):
    redriven: int


def _micros(moment: datetime | None, name: str) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise HTTPException(400, f"{name} needs its UTC offset, e.g. 2026-11-23T10:15:00+00:00")
    return int(moment.timestamp() * 1_000_000)


@router.post("/redrive", response_model=RedriveOut, responses={400: {"description": "a malformed request"}})
async def redrive(body: RedriveIn, dip: Admin) -> RedriveOut:
    """Dead-lettered (or failed, or rejected) deliveries back at the end of their queues, as they
    were: the same transaction ID, not marked as replays (the recipient never had them)."""
    now = int(time.time() * 1_000_000)
    start, end = _micros(body.from_, "from"), _micros(body.to, "to")
    if start is not None and end is not None and end < start:
        raise HTTPException(400, "to is before from")
    count = await dip.redrive(Redrive(tuple(body.states), body.recipientId, body.channel,
                                      start if start is not None else 0, end if end is not None else now), now)
    return RedriveOut(redriven=count)
