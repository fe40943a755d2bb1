"""``dip audit verify`` and ``dip audit export``: the API activity log, read straight from the
database (API contract section 5; docs/security.md "API activity log")."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from dip.audit.export import MAX_PAGE, ActivityReader, as_json, instant
from dip.signing import load_certificate_pem
from dip.store import open_store


def add_parser(sub: Any) -> None:
    a = sub.add_parser("audit", help="the API activity log: check it, export it")
    asub = a.add_subparsers(dest="audit_command", required=True)
    for name, text in (("verify", "check every hash chain and its signed checkpoints: exit 0 when intact, 1 "
                                  "naming the first broken entry"),
                       ("export", "write the entries of a time range as JSON lines (OpenTelemetry log records)")):
        p = asub.add_parser(name, help=text)
        p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIP_DATA_DIR", ".dip")))
        p.add_argument("--database-url", default=os.environ.get("DIP_DATABASE_URL"),
                       help="postgresql://... (default: SQLite under --data-dir)")
        p.add_argument("--audit-dir", type=Path, action="append",
                       default=[Path(os.environ["DIP_AUDIT_DIR"])] if os.environ.get("DIP_AUDIT_DIR") else None,
                       help="where checkpoints are (repeatable: every node's audit directory; default DATA_DIR/audit)")
        if name == "verify":
            p.add_argument("--certificate", type=Path, action="append",
                           help="trust only checkpoints signed with this certificate's key (PEM; repeatable); "
                                "default: the DIP's signing certificates recorded in the database")
        if name == "export":
            p.add_argument("--from", dest="since", help="from (inclusive; ISO 8601 with offset)")
            p.add_argument("--to", dest="until", help="up to (exclusive; ISO 8601 with offset)")


def command(args: argparse.Namespace) -> int:
    return asyncio.run(_verify(args) if args.audit_command == "verify" else _export(args))


def _reader(args: argparse.Namespace) -> ActivityReader:
    store = open_store(args.database_url, args.data_dir)
    return ActivityReader(store, list(args.audit_dir or [args.data_dir / "audit"]))


async def _verify(args: argparse.Namespace) -> int:
    reader = _reader(args)
    await reader.store.open()
    try:
        pinned = [load_certificate_pem(path.read_bytes()) for path in args.certificate or []]
        report = await reader.verify(pinned or None)
    finally:
        await reader.store.close()
    if not report.intact:
        print(f"audit log BROKEN: {report.broken}")
        print(f"({report.entries} entries checked before it)")
        return 1
    print(f"audit log intact: {report.entries} entries checked in {report.chains} chains against "
          f"{report.checkpoints} signed checkpoints")
    if report.without_checkpoints:
        print(f"{len(report.without_checkpoints)} chains have no checkpoint in this audit directory (another node's "
              f"directory?), so only their hashes were checked: {', '.join(report.without_checkpoints[:5])}")
    if report.unvouched:
        print(f"{report.unvouched} of them are newer than their chain's last checkpoint (a process still running, "
              "or one that was killed): their hashes follow, but nothing outside the database vouches for them yet")
    return 0


async def _export(args: argparse.Namespace) -> int:
    start, end = instant(args.since, "--from", 0), instant(args.until, "--to", 2 ** 62)
    reader = _reader(args)
    await reader.store.open()
    try:
        cursor: str | None = None
        while True:
            rows, cursor = await reader.page(start, end, cursor, MAX_PAGE)
            sys.stdout.buffer.write(b"".join(orjson.dumps(as_json(r)) + b"\n" for r in rows))
            if cursor is None:
                return 0
    finally:
        await reader.store.close()
