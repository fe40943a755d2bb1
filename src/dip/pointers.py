"""JSON pointers (RFC 6901), as channel definitions use them: fields to mask, fields that change
the registry, the routing date."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1024)
def parse_pointer(pointer: str) -> tuple[str, ...]:
    """RFC 6901 tokens of a pointer (``""`` is the whole document). Cached: a channel's few
    pointers are read for every message."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {pointer!r}")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))
