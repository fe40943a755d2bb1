"""The store's named SQL statements (``sql/queries.sql``), loaded once per dialect.

The file holds blocks headed ``-- name: some_name``; a block's other comment lines document it.
A block whose name starts with ``_`` is a fragment, not a statement: ``{_name}`` in a statement
is replaced by it (statements that differ only in what drives them share the rest).
Each dialect's ``translate`` is applied once, at load: the statements the store runs are then
plain strings, with no work left per call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources

_MARK = "-- name:"


def parse(text: str) -> dict[str, str]:
    """Name -> statement (comments and the final semicolon removed)."""
    found: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []

    def close() -> None:
        if name is not None:
            found[name] = "\n".join(lines).strip().rstrip(";").strip()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(_MARK):
            close()
            name, lines = stripped[len(_MARK):].strip(), []
            if name in found:
                raise ValueError(f"query {name!r} is defined twice")
        elif name is not None and not stripped.startswith("--"):
            lines.append(line.rstrip())
    close()
    fragments = {k: v for k, v in found.items() if k.startswith("_")}
    statements = {}
    for key, sql in found.items():
        if key.startswith("_"):
            continue
        for _ in range(len(fragments) + 1):  # fragments may use fragments
            for fragment, text in fragments.items():
                sql = sql.replace("{" + fragment + "}", text)
        if "{_" in sql:
            raise ValueError(f"query {key!r} uses an unknown fragment")
        statements[key] = sql
    return statements


class Queries:
    """Statements by attribute: ``q.claim``. An unknown name is an error at the first use."""

    def __init__(self, statements: dict[str, str]) -> None:
        self._statements = statements

    def __getattr__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in store/sql/queries.sql") from None

    def names(self) -> list[str]:
        return sorted(self._statements)


@functools.cache
def load(translate: Callable[[str], str]) -> Queries:
    text = resources.files("dip.store").joinpath("sql", "queries.sql").read_text(encoding="utf-8")
    return Queries({name: translate(sql) for name, sql in parse(text).items()})
