"""Field obfuscation per recipient role (E2E 4.3.2; API contract ``obfuscation``).

Pure: ``mask(payload, pointers)`` returns a copy of the payload in which the values at the
given JSON pointers are replaced, leaving the original (which the archive keeps) untouched.

Replacement values (E2E 4.3.2), which keep a message's shape (types, string lengths, dates and
DIP IDs in their formats); a string field with a pattern of its own (a decimal written as a
string, say) does not match it once masked, as the spec accepts: recipients must know which
fields a channel masks for their role:
- strings: ``x`` repeated to the value's length, except
  - dates ``YYYY-MM-DD`` -> ``1900-01-01``, date-times (25 characters) -> ``1900-01-01T00:00:00+00:00``,
  - DIP participant IDs (10 digits) -> ``9999999999``;
- booleans: ``true``;
- numbers: ``0`` (the spec sets no rule for numbers; masking them to 0 ensures nothing leaks);
- null stays null; objects and arrays are masked leaf by leaf.

A pointer token ``*`` matches every element of an array (or member of an object), so one
pointer can mask a field inside repeated blocks, e.g.
``/CustomBlock/B900/settlementDayConsumptionPeriods/*/consumptionPeriods/*/v``.
A pointer that does not resolve in a message masks nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dip.pointers import parse_pointer

DATE = "1900-01-01"
DATETIME = "1900-01-01T00:00:00+00:00"
DIP_ID = "9999999999"
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
_DIP_ID_RE = re.compile(r"\d{10}")


def masked_value(value: Any) -> Any:
    """The replacement for one value (leaves recursively)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return 0
    if isinstance(value, str):
        if _DATETIME_RE.fullmatch(value):
            return DATETIME
        if _DATE_RE.fullmatch(value):
            return DATE
        if _DIP_ID_RE.fullmatch(value):
            return DIP_ID
        return "x" * len(value)
    if isinstance(value, list):
        return [masked_value(v) for v in value]
    if isinstance(value, dict):
        return {k: masked_value(v) for k, v in value.items()}
    return value


def _mask_at(node: Any, tokens: Sequence[str]) -> Any:
    """A copy of ``node`` with the value(s) under ``tokens`` masked; shares untouched subtrees."""
    if not tokens:
        return masked_value(node)
    head, rest = tokens[0], tokens[1:]
    if isinstance(node, dict):
        if head == "*" and "*" not in node:
            return {k: _mask_at(v, rest) for k, v in node.items()}
        if head not in node:
            return node
        copy = dict(node)
        copy[head] = _mask_at(node[head], rest)
        return copy
    if isinstance(node, list):
        if head == "*":
            return [_mask_at(v, rest) for v in node]
        if head.isascii() and head.isdigit() and len(head) <= 18 and int(head) < len(node):
            copy_list = list(node)
            copy_list[int(head)] = _mask_at(node[int(head)], rest)
            return copy_list
    return node


def mask(payload: Any, pointers: Sequence[str]) -> Any:
    """``payload`` with every value at ``pointers`` masked (the argument is not modified)."""
    result = payload
    for pointer in pointers:
        result = _mask_at(result, parse_pointer(pointer))
    return result
