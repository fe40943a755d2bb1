"""``POST /validate/{id}/{event}``: the checks of accepting a batch, storing nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from dip.accept.accept_batch import DirectoryView, micros, registry_view
from dip.accept.level1 import Caller, judge
from dip.accept.registry import RegistryCache
from dip.accept.schema import SchemaChecker, spec_for
from dip.catalogue import Channel
from dip.codes import Code

MAX_ANSWER = 20_000  # characters of problems in the answer


class ValidateBatch:
    def __init__(self, state: DirectoryView, checker: SchemaChecker, registry: RegistryCache,
                 environment: str) -> None:
        self._state = state
        self._checker = checker
        self._registry = registry
        self._environment = environment

    async def __call__(self, channel: Channel, event_code: str, caller: Caller,
                       raws: Sequence[bytes | msgspec.Raw], now: datetime) -> tuple[bool, str]:
        """(True, a summary) when every message would be accepted, else (False, the problems)."""
        checked = await self._checker.check(spec_for(channel, self._environment), raws)
        problems: list[str] = []
        for c in checked:
            if c.code is not None:
                problems.append(f"[{c.index}] {c.code} {c.help}")
            elif c.header is not None and c.header.event_code != event_code:
                problems.append(f"[{c.index}] {Code.SCHEMA_FAILURE.value} /CommonBlock/S0/eventCode "
                                f"'{c.header.event_code}' is not {event_code}")
        if not problems:
            registry = await registry_view(self._registry, channel, checked)
            for v in judge(channel, self._state.directory, caller, checked, raws, now, micros(now), registry):
                if not v.accepted:
                    problems.append(f"[{v.index}] {v.code.value} {v.help}")
        if problems:
            return False, "; ".join(problems)[:MAX_ANSWER]
        return True, f"{len(raws)} message(s) valid for {channel.interface_id} {event_code}"
