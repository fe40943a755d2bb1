"""The IF-021 submission limits of E2E 6.1 (docs/security.md "IF-021 submission limits").

Half-hourly consumption data is over 90% of the traffic, with a gate closure (00:00 D+4) that
tempts data services to send everything at the last moment. E2E 6.1 asks each data service to
submit, in any hour, at most a sixth of its portfolio, and in any six hours at most half of it;
the portfolio is the number of distinct MPANs it submits on IF-021 (a "large" one is a million).
Per data service the limits are:
- ``soft`` (the default): counted and reported, never refused. A call past a limit is accepted,
  answered with an ``X-DIP-Submission-Limit`` header saying so, counted for the operator
  (``GET /admin/participants/{id}/submission-limits``) and logged; for portfolios under
  ``large_portfolio`` (the E2E's "large portfolio") nothing is reported;
- ``hard``: a call that would pass a limit is refused, 429 with ``Retry-After`` (the next clock
  hour, or when the oldest hour leaves the six-hour window), whatever the portfolio's size;
- ``off``: nothing is counted (a recovery after an outage, E2E 6.1's bulk submissions).

Counts are per clock hour, in the database every API node shares (one statement a call); the six
hours are the current clock hour and the five before it. The portfolio is measured daily by the
``portfolio`` job (distinct MPANs sent in the last day), or set by the operator.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from dip.store.limits import LimitSetting

log = logging.getLogger("dip.accept")

CHANNEL = "IF-021"
DATA_SERVICE_ROLES = frozenset({"ADS", "SDS", "UMSDS"})
MODES = ("off", "soft", "hard")
Mode = Literal["off", "soft", "hard"]
HOUR = 3_600_000_000  # µs
_UNLIMITED = 2 ** 62


@dataclass(frozen=True)
class Verdict:
    wait: float = 0.0  # > 0: refused (hard), retry after this many seconds
    warning: str | None = None  # soft: past a limit, accepted
    reason: str = ""


class _Store(Protocol):
    async def submission_limits(self) -> list[LimitSetting]: ...

    async def count_submission(self, participant_id: str, hour: int, messages: int, most: int) -> int | None: ...

    async def submitted_since(self, participant_id: str, hour: int) -> list[tuple[int, int, int]]: ...

    async def put_submission_limit(self, participant_id: str, mode: str, portfolio: int | None, now: int) -> None: ...

    async def note_over_soft(self, participant_id: str, hour: int, messages: int) -> None: ...


class SubmissionLimits:
    def __init__(self, store: _Store, large_portfolio: int = 1_000_000, refresh_seconds: float = 5.0) -> None:
        self._store = store
        self.large_portfolio = large_portfolio
        self._refresh = refresh_seconds
        self._settings: dict[str, LimitSetting] = {}
        self._loaded = float("-inf")

    async def setting(self, participant_id: str) -> LimitSetting:
        if time.monotonic() - self._loaded > self._refresh:  # every node sees a change within seconds
            self._settings = {s.participant_id: s for s in await self._store.submission_limits()}
            self._loaded = time.monotonic()
        return self._settings.get(participant_id) or LimitSetting(participant_id, "soft", None, None, None)

    async def put(self, participant_id: str, mode: str, portfolio: int | None, now: int) -> None:
        await self._store.put_submission_limit(participant_id, mode, portfolio, now)
        self.forget()

    async def recent(self, participant_id: str, now: int) -> list[tuple[int, int, int]]:
        """(hour, messages, of them past a soft limit) of the six-hour window ending now."""
        return await self._store.submitted_since(participant_id, now // HOUR - 5)

    def forget(self) -> None:
        """Read the settings again at the next call (after a change on this node)."""
        self._loaded = float("-inf")

    async def check(self, participant_id: str, messages: int, now: int) -> Verdict:
        """Count ``messages`` of the data service's IF-021 call (unless refused)."""
        setting = await self.setting(participant_id)
        if setting.mode == "off":
            return Verdict()
        portfolio = setting.effective_portfolio
        applies = portfolio is not None and portfolio > 0 and (
            setting.mode == "hard" or setting.portfolio is not None or portfolio >= self.large_portfolio)
        hour = now // HOUR
        if not applies or portfolio is None:
            await self._store.count_submission(participant_id, hour, messages, _UNLIMITED)
            return Verdict()
        per_hour, per_six = max(1, portfolio // 6), max(1, portfolio // 2)
        earlier = [(h, m) for h, m, _ in await self._store.submitted_since(participant_id, hour - 5) if h < hour]
        six_before = sum(m for _, m in earlier)
        if setting.mode == "hard":
            if messages > per_hour:
                return Verdict(wait=(hour + 1) * HOUR / 1e6 - now / 1e6,
                               reason=f"a call of {messages} messages is more than the hourly limit of {per_hour} "
                                      f"(a sixth of the portfolio of {portfolio} MPANs): split it")
            counted = await self._store.count_submission(participant_id, hour, messages, per_hour)
            if counted is None:
                return Verdict(wait=((hour + 1) * HOUR - now) / 1e6,
                               reason=f"over the hourly limit of {per_hour} messages (a sixth of the portfolio of "
                                      f"{portfolio} MPANs, E2E 6.1)")
            if six_before + counted > per_six:
                # taken back: a refused call does not count (another node's call may have come between)
                await self._store.count_submission(participant_id, hour, -messages, _UNLIMITED)
                oldest = min((h for h, m in earlier if m), default=hour)
                return Verdict(wait=((oldest + 6) * HOUR - now) / 1e6,
                               reason=f"over the six-hour limit of {per_six} messages (half the portfolio of "
                                      f"{portfolio} MPANs, E2E 6.1)")
            return Verdict()
        counted = await self._store.count_submission(participant_id, hour, messages, _UNLIMITED) or messages
        if counted > per_hour or six_before + counted > per_six:
            await self._store.note_over_soft(participant_id, hour, messages)
            which = (f"{counted} this hour of {per_hour}" if counted > per_hour
                     else f"{six_before + counted} in six hours of {per_six}")
            warning = (f"over the IF-021 soft limit (E2E 6.1): {which} for a portfolio of {portfolio} MPANs; "
                       "spread submissions over the day")
            log.warning("%s: %s", participant_id, warning)
            return Verdict(warning=warning)
        return Verdict()
