"""``/admin/participants/{id}/submission-limits``: a data service's IF-021 submission limits
(E2E 6.1; dip.accept.submission_limits): its mode, its portfolio, and what it sent, hour by hour."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from dip import ids
from dip.accept.submission_limits import DATA_SERVICE_ROLES, HOUR
from dip.ingress.admin import Admin, AdminRoute, active_participant

router = APIRouter(prefix="/admin", tags=["Operator administration"], route_class=AdminRoute)


def _stamp(micros: int | None) -> str | None:
    return None if micros is None else ids.timestamp(datetime.fromtimestamp(micros / 1_000_000, UTC))


class LimitsIn(BaseModel):
    mode: Literal["off", "soft", "hard"]
    portfolio: int | None = Field(default=None, ge=1, description="MPANs; null: the measured portfolio")


class HourOut(BaseModel):
    hour: str
    messages: int
    overSoftLimit: int


class LimitsOut(BaseModel):
    participantId: str
    mode: str
    portfolio: int | None
    measuredPortfolio: int | None
    measuredAt: str | None
    hourLimit: int | None
    sixHourLimit: int | None
    lastHours: list[HourOut]


async def _answer(dip: Admin, participant_id: str) -> LimitsOut:
    dip.submission_limits.forget()
    setting = await dip.submission_limits.setting(participant_id)
    portfolio = setting.effective_portfolio
    hours = await dip.submission_limits.recent(participant_id, int(time.time() * 1_000_000))
    return LimitsOut(participantId=participant_id, mode=setting.mode, portfolio=setting.portfolio,
                     measuredPortfolio=setting.measured, measuredAt=_stamp(setting.measured_at),
                     hourLimit=max(1, portfolio // 6) if portfolio else None,
                     sixHourLimit=max(1, portfolio // 2) if portfolio else None,
                     lastHours=[HourOut(hour=_stamp(h * HOUR) or "", messages=m, overSoftLimit=o) for h, m, o in hours])


def _data_service(dip: Admin, participant_id: str) -> None:
    participant = active_participant(dip, participant_id)
    if not participant.roles & DATA_SERVICE_ROLES:
        raise HTTPException(400, f"'{participant_id}' is not a data service ({', '.join(sorted(DATA_SERVICE_ROLES))}):"
                                 " the IF-021 submission limits are theirs")


@router.get("/participants/{participant_id}/submission-limits", response_model=LimitsOut)
async def get_limits(participant_id: str, dip: Admin) -> LimitsOut:
    """The data service's IF-021 limits (E2E 6.1) and its submissions of the last six hours."""
    _data_service(dip, participant_id)
    return await _answer(dip, participant_id)


@router.put("/participants/{participant_id}/submission-limits", response_model=LimitsOut)
async def put_limits(participant_id: str, body: LimitsIn, dip: Admin) -> LimitsOut:
    """Switch the data service's limits: ``off``, ``soft`` (reported) or ``hard`` (429 beyond
    them); ``portfolio`` overrides the measured one. Every node applies it within seconds."""
    _data_service(dip, participant_id)
    await dip.submission_limits.put(participant_id, body.mode, body.portfolio, int(time.time() * 1_000_000))
    return await _answer(dip, participant_id)
