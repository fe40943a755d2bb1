"""Numbered SQL migrations, one folder per dialect, applied in order and recorded."""

from __future__ import annotations

from importlib import resources


def migrations(dialect: str) -> list[tuple[int, str]]:
    """(version, SQL) pairs for ``dialect`` ("sqlite" or "postgres"), in order."""
    folder = resources.files("dip.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            found.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)
