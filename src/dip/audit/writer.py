"""The activity log's writer: one per API process, with a chain of its own (dip.audit.chain).

The ingress hands each finished request to ``record`` (no waiting: the caller already has its
answer). Every ``flush_seconds`` the writer seals what came (entries built, masked, chained and
compressed on a thread, off the event loop) and stores it in one transaction; every
``checkpoint_seconds``, and when it stops, it signs the chain's head into its checkpoint file.

If the store fails, the sealed entries are kept and stored at the next flush, in order: the chain
never has a gap. What a process held when it was killed (at most ``flush_seconds`` of requests)
is lost with it; the chain then ends at its last stored entry (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

from dip.audit.chain import GENESIS, checkpoint, checkpoint_file, link, pack
from dip.audit.entries import Capture, entry_json
from dip.exceptions import UniqueViolation
from dip.signing import Signer, load_certificate_pem
from dip.store.activity import ActivityRow, ActivityStore

log = logging.getLogger("dip.audit")


class ActivityLog:
    def __init__(self, store: ActivityStore, chain: str, folder: Path, flush_seconds: float = 0.2,
                 checkpoint_seconds: float = 10.0) -> None:
        self.store = store
        self.chain = chain
        self.folder = folder
        self.flush_seconds = flush_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self._signer: Signer | None = None
        self._waiting: list[Capture] = []
        self._sealed: list[ActivityRow] = []  # sealed, not yet stored
        self._seq = 0
        self._head = GENESIS
        self._stored = 0  # the last seq stored ...
        self._stored_hash = GENESIS  # ... and its hash
        self._stopping = False
        self._checkpointed = 0
        self._last_checkpoint = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, capture: Capture) -> None:
        self._waiting.append(capture)
        if len(self._waiting) >= 1_000:
            self._wake.set()

    async def start(self, signer: Signer) -> None:
        """``signer``: the DIP's key and certificate now (read at each checkpoint: rotations apply)."""
        self._signer = signer
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="activity-log")

    async def stop(self) -> None:
        """Store what is left and sign the final checkpoint (a flush is never cut in the middle:
        the chain would lose entries it had numbered)."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        try:
            await self.flush()
            await self._checkpoint(final=True)
        except Exception:
            log.exception("the activity log could not store its last %d entries", len(self._sealed))

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                if time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds:
                    await self._checkpoint(final=False)
            except Exception:
                log.exception("the activity log could not store %d entries; trying again", len(self._sealed))

    async def flush(self) -> None:
        """Seal what came and store everything sealed."""
        if self._waiting:
            captures, self._waiting = self._waiting, []
            self._sealed.extend(await asyncio.get_running_loop().run_in_executor(None, self._seal, captures))
        if not self._sealed:
            return
        rows = self._sealed
        try:
            await self.store.append_activity(rows)
        except UniqueViolation:
            # an earlier try was committed though its answer was lost: keep what is not stored
            stored = await self.store.activity_chain(self.chain, rows[0].seq - 1, len(rows))
            rows = rows[len(stored):]
            if rows:
                await self.store.append_activity(rows)
        self._sealed = []
        last = rows[-1] if rows else None
        if last is not None:
            self._stored, self._stored_hash = last.seq, last.hash

    def _seal(self, captures: list[Capture]) -> list[ActivityRow]:
        """On a thread: build, chain and pack (the only place the head moves)."""
        rows = []
        for capture in captures:
            self._seq += 1
            entry, refused = entry_json(capture, self.chain, self._seq)
            self._head = link(self._head, entry)
            rows.append(ActivityRow(self.chain, self._seq, capture.started_ns // 1_000, capture.request_id,
                                    capture.caller, capture.status, refused, pack(entry), self._head))
        return rows

    async def _checkpoint(self, final: bool) -> None:
        """Sign the head of what is stored into the checkpoint file (fsynced); ``final`` when
        nothing more will come."""
        self._last_checkpoint = time.monotonic()
        if self._signer is None or self._stored == 0:
            return  # nothing stored yet: no file
        if self._stored == self._checkpointed and not final:
            return
        final = final and not self._sealed and not self._waiting
        point = checkpoint(self._signer.key, load_certificate_pem(self._signer.cert_pem), self.chain, self._stored,
                           self._stored_hash,
                           int(time.time() * 1_000_000), final)
        path = checkpoint_file(self.folder, self.chain)
        await asyncio.get_running_loop().run_in_executor(None, _append_synced, path, point.line())
        self._checkpointed = self._stored


def _append_synced(path: Path, line: bytes) -> None:
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
