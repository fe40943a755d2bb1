"""Continuation tokens: where the next page of a large answer starts (X-Continuation-Token).

A token is a page, not a position: asked again it answers the same page, so a client whose
download failed asks again. It belongs to the caller, the queue read and the exact request, and
lasts an hour; anything else is refused (``RequestProblem``). Kept in the store, so any node
serves the next page.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from dip.archive.selection import RequestProblem
from dip.store.archive import START, ReplayPage

TOKEN_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Page:
    """One answer of a paged replay: 200 (the last or only page), 206 (more: ``token`` reads the
    next) or 204 (nothing); ``body`` is the JSON array, a chunk at a time."""

    status: int
    token: str | None
    body: AsyncIterator[bytes] | None


NOTHING = Page(204, None, None)


class Store(Protocol):
    async def put_replay_page(self, token: str, page: ReplayPage) -> None: ...

    async def replay_page(self, token: str) -> ReplayPage | None: ...


async def resume(store: Store, token: str | None, caller_id: str, queue: str, digest: str,
                 now: int) -> tuple[int, int]:
    """Where the page ``token`` starts (the beginning without one)."""
    if token is None:
        return START
    page = await store.replay_page(token)
    if page is None or page.expires_at < now or (page.caller_id, page.queue, page.request_hash) != (
            caller_id, queue, digest):
        raise RequestProblem("X-Continuation-Token is unknown or has expired, or belongs to another request: "
                             "send the request again without it to start from the beginning")
    return page.after_at, page.after_id


async def next_page(store: Store, caller_id: str, queue: str, digest: str, last: tuple[int, int], now: int) -> str:
    """A token for the page after ``last`` (accepted_at, id)."""
    token = str(uuid.uuid4())
    await store.put_replay_page(token, ReplayPage(caller_id, queue, digest, *last, now + TOKEN_SECONDS * 1_000_000))
    return token
