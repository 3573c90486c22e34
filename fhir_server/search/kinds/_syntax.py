"""Search-value syntax shared by the kinds: escaping, ``|`` splitting, prefixes, and conditions that must
hold for ONE indexed element (an array of values must not let two different elements satisfy the two
halves of a range).
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.fhir.errors import BadRequest

# Longer values are never legitimate search input here, and would only cost regex time.
MAX_LENGTH = 1000
PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})
_PREFIX = re.compile(r"^([a-z]{2})(.*)$", re.DOTALL)


def check(value: str, name: str) -> None:
    """400 for a value no kind can match: empty, too long, or holding a NUL."""
    if value == "":
        raise BadRequest(f"empty value for search parameter '{name}'", expression=name)
    if len(value) > MAX_LENGTH:
        raise BadRequest(f"value of '{name}' is longer than {MAX_LENGTH} characters", expression=name)
    if "\x00" in value:
        raise BadRequest(f"value of '{name}' contains a NUL character", expression=name)


def unescape(value: str) -> str:
    """Undo FHIR search escaping (``\\,`` ``\\|`` ``\\$`` ``\\\\``)."""
    return re.sub(r"\\([\\,|$])", r"\1", value)


def split_bars(value: str) -> list[str]:
    """Split on unescaped ``|`` and unescape each part."""
    parts, start, i = [], 0, 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == "|":
            parts.append(unescape(value[start:i]))
            start = i + 1
        i += 1
    parts.append(unescape(value[start:]))
    return parts


def split_prefix(value: str, name: str) -> tuple[str, str]:
    """``ge2020`` → ``("ge", "2020")``; no prefix means ``eq``. Numbers and dates start with a digit or a
    sign, so two leading letters are always a prefix, and an unknown one is a 400."""
    m = _PREFIX.match(value)
    if not m:
        return "eq", value
    if m.group(1) not in PREFIXES:
        raise BadRequest(f"unknown prefix '{m.group(1)}' in '{value}' for '{name}'", expression=name)
    return m.group(1), m.group(2)


def shape(values: list[Any], single: bool) -> Any:
    """A scalar when the parameter is single-valued and yielded exactly one index value, else the list."""
    return values[0] if single and len(values) == 1 else values


def one_element(field: str, single: bool, clause: dict[str, Any]) -> dict[str, Any]:
    """The condition that ONE element of ``field`` satisfies every entry of ``clause``.

    ``clause`` maps a sub-field (``""`` for the element itself) to an equality value or operator dict.
    A scalar (``single``) is addressed with dotted paths; an array needs ``$elemMatch`` unless the clause
    is a single comparison, where "some element" already means one element.
    """
    simple = len(clause) == 1 and not (
        isinstance(cond := next(iter(clause.values())), dict) and len(cond) > 1
    )
    if single or simple:
        return {f"{field}.{sub}" if sub else field: c for sub, c in clause.items()}
    if "" in clause:
        return {field: {"$elemMatch": clause[""]}}
    return {field: {"$elemMatch": clause}}


def any_of(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """OR of conditions, without a needless ``$or`` around one."""
    return conditions[0] if len(conditions) == 1 else {"$or": conditions}
