"""The activity log's hash chains, their signed checkpoints, and how both are checked.

A chain is what one API process writes, numbered 1, 2, ... without gaps. Entry n's hash is
SHA-256(hash of entry n-1 || entry n's JSON), entry 1's previous hash 32 zero bytes (or, after the
log's retention removed the chain's start, the hash its signed cut records). A changed entry no
longer gives its hash; a removed or inserted one breaks the numbering or the next hash.

Someone who can write the database can also recompute every hash after a change, so the chain
alone proves nothing against them: each process also writes **checkpoints** (the head of its chain:
seq and hash, signed with the DIP's key) to files outside the database (the audit directory,
``checkpoints-<chain>.jsonl``), every few seconds and when it stops (then marked ``final``). A
rewritten chain no longer gives a checkpoint's hash; a chain cut short lacks entries a checkpoint
vouches for; an entry appended after a final checkpoint is an insertion. What no checkpoint covers
yet (the last seconds of a running process, or of one that was killed) is reported as such.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography import x509

from dip.signing import SigningKey, fingerprint, sign_bytes, verifies
from dip.store import payload_codec
from dip.store.activity import ActivityCut, ActivityRow, ActivityStore

GENESIS = bytes(32)


def link(previous: bytes, entry: bytes) -> bytes:
    digest = hashlib.sha256(previous)
    digest.update(entry)
    return digest.digest()


def pack(entry: bytes) -> bytes:
    """An entry as stored (a zstd frame: a send's answer repeats itself item after item)."""
    return payload_codec.encode(entry, dictionary=False)


def unpack(stored: bytes) -> bytes:
    return payload_codec.decode(stored)


@dataclass(frozen=True)
class Checkpoint:
    chain: str
    seq: int
    hash: bytes
    at: int  # microseconds since the epoch
    final: bool
    signer: str  # the SHA-256 fingerprint of the certificate whose key signed it
    signature: bytes

    def signed_bytes(self) -> bytes:
        return _signed("checkpoint", self.chain, self.seq, self.hash, self.at, self.final)

    def line(self) -> bytes:
        return orjson.dumps({
            "chain": self.chain, "seq": self.seq, "hash": self.hash.hex(), "at": self.at, "final": self.final,
            "signer": self.signer, "signature": base64.b64encode(self.signature).decode("ascii"),
        }) + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Checkpoint:
        d = orjson.loads(line)
        return cls(str(d["chain"]), int(d["seq"]), bytes.fromhex(d["hash"]), int(d["at"]), bool(d["final"]),
                   str(d["signer"]), base64.b64decode(d["signature"]))


def _signed(kind: str, chain: str, seq: int, hash_: bytes, at: int, final: bool = False) -> bytes:
    return f"dip-audit-{kind}\n{chain}\n{seq}\n{hash_.hex()}\n{at}\n{int(final)}".encode()


def checkpoint(key: SigningKey, cert: x509.Certificate, chain: str, seq: int, hash_: bytes, at: int,
               final: bool) -> Checkpoint:
    return Checkpoint(chain, seq, hash_, at, final, fingerprint(cert),
                      sign_bytes(key, _signed("checkpoint", chain, seq, hash_, at, final)))


def cut(key: SigningKey, chain: str, through_seq: int, hash_: bytes, at: int) -> ActivityCut:
    return ActivityCut(chain, through_seq, hash_, at, sign_bytes(key, _signed("cut", chain, through_seq, hash_, at)))


def checkpoint_file(folder: Path, chain: str) -> Path:
    return folder / f"checkpoints-{chain}.jsonl"


def read_checkpoints(folders: Sequence[Path]) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint in the folders' files, and the lines that are not checkpoints."""
    found, bad = [], []
    paths = sorted(p for folder in folders if folder.is_dir() for p in folder.glob("checkpoints-*.jsonl"))
    for path in paths:
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                found.append(Checkpoint.parse(line))
            except (ValueError, KeyError, TypeError):
                bad.append(f"{path.name}:{number}")
    return found, bad


# -- checking ----------------------------------------------------------------------------------


@dataclass
class Report:
    entries: int = 0
    chains: int = 0
    checkpoints: int = 0
    unvouched: int = 0  # entries no checkpoint covers yet (the newest of a running or killed process)
    without_checkpoints: list[str] = field(default_factory=list)  # chains with no checkpoint in the folder
    broken: str | None = None  # the first broken entry, and how

    @property
    def intact(self) -> bool:
        return self.broken is None


def _describe(row: ActivityRow) -> str:
    return f"entry {row.chain}/{row.seq} (request {row.request_id}, {_when(row.at)})"


def _when(at: int) -> str:
    return datetime.fromtimestamp(at / 1_000_000, UTC).isoformat(timespec="seconds")


async def _rows(store: ActivityStore, chain: str, after: int, page: int = 2_000) -> AsyncIterator[ActivityRow]:
    while True:
        rows = await store.activity_chain(chain, after, page)
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1].seq


async def verify(store: ActivityStore, folders: Sequence[Path], certificates: Iterable[x509.Certificate]) -> Report:
    """Check every chain in the store against its hashes, its cut and the checkpoints in
    ``folders`` (every node's audit directory; signed by one of ``certificates``); stop at the
    first broken entry."""
    report = Report()
    by_fingerprint = {fingerprint(c): c for c in certificates}
    points, unreadable = read_checkpoints(folders)
    if unreadable:
        report.broken = f"checkpoint line {unreadable[0]} is not a checkpoint"
        return report
    for point in points:
        cert = by_fingerprint.get(point.signer)
        if cert is None or not verifies(cert, point.signed_bytes(), point.signature):
            report.broken = (f"the checkpoint of chain {point.chain} at entry {point.seq} does not verify with "
                             "the DIP's certificate")
            return report
    report.checkpoints = len(points)
    cuts = {c.chain: c for c in await store.activity_cuts()}
    for c in cuts.values():
        cert_ok = any(verifies(cert, _signed("cut", c.chain, c.through_seq, c.hash, c.at), c.signature)
                      for cert in by_fingerprint.values())
        if not cert_ok:
            report.broken = f"the retention cut of chain {c.chain} (through entry {c.through_seq}) does not verify"
            return report
    spans = {s.chain: s for s in await store.activity_chains()}
    chains = sorted(set(spans) | {p.chain for p in points})
    for chain in chains:
        expected = {p.seq: p for p in points if p.chain == chain}
        if not expected:
            report.without_checkpoints.append(chain)
        report.broken = await _check_chain(store, chain, cuts.get(chain), expected, report)
        if report.broken is not None:
            return report
        report.chains += 1
    return report


async def _check_chain(store: ActivityStore, chain: str, cut_: ActivityCut | None, points: dict[int, Checkpoint],
                       report: Report) -> str | None:
    previous, seq = (cut_.hash, cut_.through_seq + 1) if cut_ is not None else (GENESIS, 1)
    vouched = max((s for s in points if s >= seq), default=0)
    final = next((p for p in points.values() if p.final), None)
    async for row in _rows(store, chain, seq - 1):
        if row.seq != seq:
            return f"entry {chain}/{seq} is missing (the chain goes on at {row.seq})"
        if final is not None and row.seq > final.seq:
            return f"{_describe(row)} was inserted after the chain's final checkpoint (entry {final.seq})"
        entry = unpack(row.entry)
        hashed = link(previous, entry)
        if hashed != row.hash:
            return f"{_describe(row)} was changed (or one before it removed): its hash does not follow"
        position = orjson.loads(entry).get("attributes", {})
        if position.get("dip.audit.chain") != chain or position.get("dip.audit.seq") != seq:
            return f"{_describe(row)} was moved: it says it is {position.get('dip.audit.chain')}/" \
                   f"{position.get('dip.audit.seq')}"
        point = points.get(seq)
        if point is not None and point.hash != hashed:
            return f"{_describe(row)} does not give the hash its checkpoint of {_when(point.at)} signed: the chain " \
                   "was rewritten"
        report.entries += 1
        if seq > vouched:
            report.unvouched += 1
        previous = hashed
        seq += 1
    if vouched >= seq:
        return f"entry {chain}/{seq} is missing: the chain ends at {seq - 1}, and its checkpoint " \
               f"of {_when(points[vouched].at)} vouches for entries up to {vouched}"
    return None
