"""Signed requests that change state are taken once (docs/security.md, "Replayed requests").

A captured request (a webhook registration, a status message, a requeue) sent again byte for
byte within its signature's time window would otherwise be taken again: the DIP records each
such request's signature, in the database so that every API node sees it, until the window has
passed (the retention job forgets it then). Sends need none of this: a sender unique reference
is taken once already. A client repeating a request signs it again; ECDSA signatures differ each
time.
"""

from __future__ import annotations

import hashlib
from typing import Protocol


class _Store(Protocol):
    async def first_sight(self, digest: bytes, expires_at: int) -> bool: ...


class ReplayGuard:
    def __init__(self, store: _Store, window_seconds: float) -> None:
        self._store = store
        self._window = int(window_seconds * 1_000_000)

    async def first_time(self, signature: str, now: int) -> bool:
        """Whether this signature is seen for the first time (it is recorded if so)."""
        # a signature dated up to a window ahead of ``now`` is accepted up to a window after that
        return await self._store.first_sight(hashlib.sha256(signature.encode()).digest(), now + 2 * self._window)
