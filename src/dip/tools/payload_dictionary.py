"""Make a zstd dictionary for archived payloads (``dip.store.payload_codec``) from sample messages.

    python -m dip.tools.payload_dictionary src/dip/data/payloads-2.zdict --id 2

A shipped dictionary is never changed: stored messages name the one they were compressed with.
A new one (say, when the catalogue gains interfaces whose messages look unlike these) gets the
next ID and a file of its own, and the codec compresses with the highest ID from then on.

The samples are the messages ``dip.tools.samples`` makes (IF-021 consumption of 24 and 48
periods, IF-005, IF-024), from many senders, days, MPANs and readings: what a dictionary learns
is what such messages share (keys, codes, layout), not any one message's values.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import zstandard

from dip.signing import generate_identity
from dip.tools.client import DipClient, Identity
from dip.tools.samples import advisory_block, consumption_block, meter_install_block, sample_mpans

SIZE = 16_384  # bytes; 64 KB compressed these messages no better
SAMPLES = 4_000


def samples(count: int, seed: int = 7) -> list[bytes | bytearray | memoryview]:
    rng = random.Random(seed)
    key_pem, cert_pem = generate_identity("1300000001")
    client = DipClient("http://127.0.0.1:1", Identity("1300000001", "SDS", "", key_pem, cert_pem, "", "PROD"))
    day = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[bytes | bytearray | memoryview] = []
    for n, mpan in enumerate(sample_mpans(count, seed)):
        sender = f"1{rng.randrange(10**8, 10**9)}"
        at = day + timedelta(days=rng.randrange(700), seconds=rng.randrange(86_400))
        kind = n % 10
        if kind < 8:
            block = consumption_block(sender, at, rng, periods=48 if kind % 2 else 24)
            message = client.message("IF-021", "[ActivePower]", "011", block, mpan=mpan,
                                     on_behalf_of=(sender, "SDS") if kind < 4 else None)
        elif kind == 8:
            message = client.message("IF-005", "[MeterInstall]", "011", meter_install_block(at), mpan=mpan,
                                     primary_recipients=["1100000001"])
        else:
            message = client.message("IF-024", "[SN-Vacant]", "011", advisory_block(at), mpan=mpan,
                                     primary_recipients=[sender])
        out.append(orjson.dumps(message))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--id", type=int, required=True, help="the dictionary's ID: one more than the newest shipped")
    args = parser.parse_args()
    made = zstandard.train_dictionary(SIZE, samples(SAMPLES), dict_id=args.id, level=3)
    args.path.write_bytes(made.as_bytes())
    print(f"{args.path}: dictionary {made.dict_id()}, {len(made.as_bytes()):,} bytes")


if __name__ == "__main__":
    main()
