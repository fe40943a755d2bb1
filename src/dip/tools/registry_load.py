"""``dip registry load``: bulk-load MPAN appointments from a file into a running DIP.

Reads CSV (header ``MPANCore,role,participantId,effectiveFrom,effectiveTo``; an empty
effectiveTo is open-ended) or JSON Lines (one appointment object per line), streams it in
batches to ``POST /admin/mpan-registry`` and shows a progress bar, so files of millions of rows
load in one command without being held in memory.
"""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

FIELDS = ("MPANCore", "role", "participantId", "effectiveFrom", "effectiveTo")


def read_appointments(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as stream:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for number, line in enumerate(stream, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
            return
        reader = csv.DictReader(stream)
        missing = set(FIELDS[:4]) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: CSV header lacks {', '.join(sorted(missing))} (expected {','.join(FIELDS)})")
        for row in reader:
            yield {
                "MPANCore": row["MPANCore"], "role": row["role"], "participantId": row["participantId"],
                "effectiveFrom": row["effectiveFrom"], "effectiveTo": row.get("effectiveTo") or None,
            }


def _count_rows(path: Path) -> int:
    with path.open("rb") as stream:
        lines = sum(1 for line in stream if line.strip())
    return lines - (0 if path.suffix.lower() in (".jsonl", ".ndjson") else 1)


def _post(url: str, admin_key: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--url must be an http(s) URL, not {url!r}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url.rstrip("/") + "/admin/mpan-registry", data=orjson.dumps({"appointments": batch}), method="POST",
        headers={"X-API-Key": admin_key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 - the operator's own DIP URL
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        raise ValueError(f"the DIP refused a batch ({exc.code}): {exc.read().decode(errors='replace')[:2000]}") from exc


def load_file(path: Path, url: str, admin_key: str, batch_size: int = 50_000, progress: bool = True) -> int:
    """Load every appointment in ``path``; returns how many were loaded."""
    total = _count_rows(path)
    loaded = 0
    batch: list[dict[str, Any]] = []
    with tqdm(total=total, unit="rows", disable=not progress, desc=path.name) as bar:
        for appointment in read_appointments(path):
            batch.append(appointment)
            if len(batch) >= batch_size:
                loaded += _post(url, admin_key, batch)["loaded"]
                bar.update(len(batch))
                batch = []
        if batch:
            loaded += _post(url, admin_key, batch)["loaded"]
            bar.update(len(batch))
    return loaded
