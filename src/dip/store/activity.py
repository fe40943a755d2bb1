"""What the store keeps of the API activity log (dip.audit): rows of hash chains, and the cuts
its retention made at their starts."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class ActivityRow(NamedTuple):
    """One entry as stored: ``entry`` is its JSON as a zstd frame (dip.audit.chain)."""

    chain: str
    seq: int
    at: int  # microseconds since the epoch
    request_id: str
    caller: str | None
    status: int
    refused: int  # messages the response refused
    entry: bytes
    hash: bytes


class ChainSpan(NamedTuple):
    chain: str
    first: int
    last: int
    entries: int


class ActivityCut(NamedTuple):
    """Entries 1..``through_seq`` of ``chain`` were removed by the log's retention; the last of
    them had ``hash``. Signed by the DIP (dip.audit.chain.cut_bytes)."""

    chain: str
    through_seq: int
    hash: bytes
    at: int
    signature: bytes


class ActivityStore(Protocol):
    async def append_activity(self, rows: list[ActivityRow]) -> None:
        """Store entries (one transaction); an entry already stored fails the whole call."""

    async def activity_page(self, start: int, end: int, after: tuple[int, str, int],
                            limit: int) -> list[ActivityRow]:
        """Entries with ``start <= at < end`` after ``after`` (at, chain, seq), in that order."""

    async def activity_chains(self) -> list[ChainSpan]:
        """Every chain with entries, by name."""

    async def activity_chain(self, chain: str, after_seq: int, limit: int) -> list[ActivityRow]:
        """A chain's entries after ``after_seq``, in order."""

    async def activity_cuts(self) -> list[ActivityCut]: ...

    async def activity_due(self, before: int) -> list[tuple[str, int, bytes]]:
        """Per chain, the last entry older than ``before``: (chain, seq, hash)."""

    async def cut_activity(self, cut: ActivityCut, chunk: int = 10_000) -> int:
        """Record ``cut`` (never moving a chain's cut back), then delete the entries it covers;
        how many were deleted."""
