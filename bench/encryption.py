"""What encryption at rest costs ingest (issue 17: "measure and state the cost").

The same ingest as bench/audit.py (IF-021, security category 4: every payload encrypted) against
a real `dip serve` with a key-encryption key and without one, alternating, on a fresh database
each run; large calls (50,000 messages) and small ones (100 a call, 4 clients). Prints
messages/s and the machine's CPU a message per run, and the median change. The delivery side
(decrypting for recipients) is measured by bench/e2e.py with DIP_BENCH_SERVE_ARGS="--kek-file F".

    .venv/bin/python -m bench.encryption [--rounds 3] [--stores postgres,sqlite]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.audit import compare
from dip.store.encryption import new_kek_file


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        kek = Path(folder) / "kek"
        new_kek_file(kek)
        compare("encryption-at-rest cost benchmark", "encryption", ["--kek-file", str(kek)], [])


if __name__ == "__main__":
    main()
