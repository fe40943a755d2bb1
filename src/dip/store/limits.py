"""What the store keeps of the IF-021 submission limits (dip.accept.submission_limits)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LimitSetting:
    participant_id: str
    mode: str  # off | soft | hard
    portfolio: int | None  # the operator's
    measured: int | None  # the portfolio job's
    measured_at: int | None

    @property
    def effective_portfolio(self) -> int | None:
        return self.portfolio if self.portfolio is not None else self.measured
