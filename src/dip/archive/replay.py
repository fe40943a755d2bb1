"""Replay (E2E 4.9, FS 5.5.11): a recipient's archived publications on one channel, answered at
once, each under a new wrapper with the original beside it; large selections in pages.

Who may ask is decided at the HTTP edge (dip.ingress.archive); this use case selects, pages and
builds. docs/archive.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from dip import ids
from dip.archive import pages
from dip.archive.selection import MessageRequest
from dip.catalogue import Channel
from dip.egress.body import Publication, Replayed, egress_element
from dip.queue import publication_queue
from dip.store.archive import ArchiveStore, Selected

PAGE_SIZE = 50_000  # elements per answer (E2E 4.9)
_READ_CHUNK = 1_000  # stored messages read at a time while the answer streams


def _ids(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


class Replay:
    def __init__(self, store: ArchiveStore, ticket_url: Callable[[str], str], page_size: int = PAGE_SIZE) -> None:
        self.store = store
        self.ticket_url = ticket_url
        self.page_size = page_size

    async def page(self, caller_id: str, recipient_id: str, channel: Channel, request: MessageRequest,
                   token: str | None, now: int) -> pages.Page:
        queue = publication_queue(recipient_id, channel.interface_id)
        digest = request.digest()
        after = await pages.resume(self.store, token, caller_id, queue, digest, now)
        selected = await self.store.select(request.selection(queue, now), after, self.page_size + 1)
        if not selected:
            return pages.NOTHING
        next_token = None
        if len(selected) > self.page_size:
            selected = selected[:self.page_size]
            last = selected[-1]
            next_token = await pages.next_page(self.store, caller_id, queue, digest, (last.accepted_at, last.id), now)
        return pages.Page(206 if next_token else 200, next_token, self._elements(channel, selected, now))

    async def _elements(self, channel: Channel, selected: Sequence[Selected], now: int) -> AsyncIterator[bytes]:
        """The DIPMessageEgressArray, a chunk of elements at a time (50,000 messages are ~150 MB)."""
        masks = channel.definition.obfuscation
        moment = datetime.fromtimestamp(now / 1_000_000, UTC)
        first = True
        yield b"["
        for i in range(0, len(selected), _READ_CHUNK):
            chunk = selected[i:i + _READ_CHUNK]
            stored = await self.store.stored_messages(sorted({s.transaction_id for s in chunk}))
            found = [s for s in chunk if s.transaction_id in stored]  # purged meanwhile: left out
            new_ids = ids.replay_transaction_ids([s.transaction_id for s in found], moment)
            parts = []
            for s, new_id in zip(found, new_ids, strict=True):
                m = stored[s.transaction_id]
                replay = Replayed(new_id, now, ids.reply_correlation_id(m.correlation_id, new_id))
                p = Publication(s.transaction_id, channel.publication_id, m.payload, m.received_at, m.correlation_id,
                                s.role, _ids(m.a0_secondary), _ids(m.a0_always), replay,
                                None if m.common_start is None or m.common_end is None
                                else (m.common_start, m.common_end))
                parts.append(egress_element(p, masks.get(s.role, ()), self.ticket_url(s.transaction_id)))
            if parts:
                yield (b"" if first else b",") + b",".join(parts)
                first = False
        yield b"]"
