"""``dip keys new-kek`` and ``dip keys rewrap``: the key-encryption keys of encryption at rest
(dip.store.encryption; docs/security.md "Encryption at rest")."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from dip.store import open_store
from dip.store.encryption import Keyring, load_keks, new_kek_file


def add_parsers(sub: Any) -> None:
    keys = sub.add_parser("keys", help="encryption at rest: key-encryption keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    new = ksub.add_parser("new-kek", help="write a new random key-encryption key (readable by its owner only)")
    new.add_argument("file", type=Path)
    rewrap = ksub.add_parser("rewrap", help="re-wrap every data key with the current KEK (rotation, no downtime)")
    rewrap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIP_DATA_DIR", ".dip")))
    rewrap.add_argument("--database-url", default=os.environ.get("DIP_DATABASE_URL"))
    rewrap.add_argument("--kek-file", type=Path, required=True, help="the new KEK")
    rewrap.add_argument("--previous-kek-file", type=Path, action="append", default=[], required=True,
                        help="the KEK(s) being rotated away (repeatable)")


def command(args: argparse.Namespace) -> int:
    if args.keys_command == "new-kek":
        new_kek_file(args.file)
        print(f"new key-encryption key in {args.file}: keep it outside the database's backups")
        return 0
    return asyncio.run(_rewrap(args))


async def _rewrap(args: argparse.Namespace) -> int:
    store = open_store(args.database_url, args.data_dir)
    store.protect(Keyring(load_keks(args.kek_file, args.previous_kek_file, None)), lambda _interface: False)
    await store.open()
    try:
        done, already = await store.rewrap_data_keys()
    finally:
        await store.close()
    print(f"{done} data keys re-wrapped with the new KEK ({already} were already)")
    return 0
