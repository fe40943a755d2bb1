"""``dip migrate status`` and ``dip migrate apply``: the database schema's versions, and bringing
it up to date before the nodes start (a node migrates at start anyway; this lets an operator do it
first, and see where a database stands). A database migrated by a newer DIP is refused by both,
and by every node at start."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any, cast

from dip.store import open_store
from dip.store.migrations import migrate, status
from dip.store.sql_store import SqlStore


def add_parser(sub: Any) -> None:
    m = sub.add_parser("migrate", help="the database schema: its status, or apply what is pending")
    msub = m.add_subparsers(dest="migrate_command", required=True)
    for name, text in (("status", "applied and pending migrations"), ("apply", "apply the pending migrations")):
        p = msub.add_parser(name, help=text)
        p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIP_DATA_DIR", ".dip")))
        p.add_argument("--database-url", default=os.environ.get("DIP_DATABASE_URL"))


def command(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    store = cast(SqlStore, open_store(args.database_url, args.data_dir))
    await store.db.open()
    try:
        if args.migrate_command == "apply":
            applied = await migrate(store.db, store.q)
            print(f"applied {len(applied)} migration(s): {', '.join(map(str, applied)) or 'none pending'}")
        done, pending = await status(store.db, store.q)
        print(f"schema at version {max(done, default=0)}; {len(done)} applied, {len(pending)} pending"
              + (f": {', '.join(map(str, pending))}" if pending else ""))
        return 0
    finally:
        await store.db.close()
