"""What encryption at rest costs ingest (issue 17: "measure and state the cost").

The same ingest as bench/audit.py (IF-021, security category 4: every payload encrypted) against
a real `dip serve` with a key-encryption key and without one, alternating, on a fresh database
each run; large calls (50,000 messages) and small ones (100 a call, 4 clients). Prints
messages/s and the machine's CPU a message per run, and the median change. The delivery side
(decrypting for recipients) is measured by bench/e2e.py with DIP_BENCH_SERVE_ARGS="--kek-file F".

    .venv/bin/python -m bench.encryption [--rounds 3] [--stores postgres,sqlite]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.audit import SHAPES, run
from bench.common import calibration, machine
from dip.store.encryption import new_kek_file


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--shapes", default="large,small")
    args = parser.parse_args()
    print(f"encryption-at-rest cost benchmark on {machine()}; {calibration()}")
    with tempfile.TemporaryDirectory() as folder:
        kek = Path(folder) / "kek"
        new_kek_file(kek)
        for store in args.stores.split(","):
            for shape in args.shapes.split(","):
                size, calls, clients = SHAPES[shape]
                print(f"{store}, {shape} calls ({size} messages a call, {calls} calls, {clients} clients):")
                changes, cpu_changes = [], []
                for r in range(args.rounds):
                    got = {}
                    for encrypted in ((True, False) if r % 2 == 0 else (False, True)):
                        got[encrypted] = run(store, shape, True, ["--kek-file", str(kek)] if encrypted else [])
                        rate, cpu = got[encrypted]
                        print(f"  round {r + 1}, {'encrypted' if encrypted else 'plain    '}: {rate:9,.0f} msg/s, "
                              f"machine CPU {cpu:6.1f} µs a message")
                    changes.append((got[True][0] - got[False][0]) / got[False][0] * 100)
                    cpu_changes.append((got[True][1] - got[False][1]) / got[False][1] * 100)
                    print(f"  round {r + 1}: throughput {changes[-1]:+.1f}%, CPU a message {cpu_changes[-1]:+.1f}% "
                          "encrypted")
                print(f"  {store} {shape}: median throughput change {statistics.median(changes):+.1f}% "
                      f"(worst {min(changes):+.1f}%), CPU a message {statistics.median(cpu_changes):+.1f}% "
                      f"(worst {max(cpu_changes):+.1f}%)")


if __name__ == "__main__":
    main()
