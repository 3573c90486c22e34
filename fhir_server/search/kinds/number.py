"""Number parameters: integers and decimals, stored as floats (a scalar when the parameter is single).

Queries follow the precision rules of FHIR R4 search: without a prefix (or with ``eq``/``ne``) the search
value stands for the range its significant digits imply (``100`` is ``[99.5, 100.5)``, ``100.00`` is
``[99.995, 100.005)``, ``1e2`` is ``[50, 150)``); ``gt lt ge le sa eb`` compare against the exact value;
``ap`` accepts values within 10% of it (never less than the implied range).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds._syntax import any_of, check, one_element, shape, split_prefix

MODIFIERS: frozenset[str] = frozenset()

_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")


def as_float(value: Any) -> float | None:
    """A JSON number or decimal string as a float; None for anything else."""
    # bool is an int in Python, but never a FHIR number.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value)
    return None


def _numbers(values: list[Any]) -> list[float]:
    return [f for f in map(as_float, values) if f is not None]


def extract(values: list[Any], single: bool) -> dict[str, Any]:
    """The main field: every numeric value as a float."""
    numbers = sorted(set(_numbers(values)))
    return {"": shape(numbers, single)} if numbers else {}


def sort_key(values: list[Any]) -> Any:
    """The smallest value."""
    return min(_numbers(values), default=None)


def parse(text: str, name: str) -> Decimal:
    """A search number (decimal or exponential form); 400 naming ``name`` if malformed."""
    if not _NUMBER.match(text):
        raise BadRequest(f"'{text}' is not a number for '{name}'", expression=name)
    return Decimal(text)


def conditions(prefix: str, number: Decimal) -> list[dict[str, Any]]:
    """Alternatives (OR) of operator dicts one stored value must satisfy for ``prefix`` ``number``."""
    # Half a unit of the last significant digit: 100 → 0.5, 100.00 → 0.005, 1e2 → 50.
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # the pattern admits no NaN or Infinity
    half = Decimal(5).scaleb(exponent - 1)
    lo, hi, exact = float(number - half), float(number + half), float(number)
    if prefix == "eq":
        return [{"$gte": lo, "$lt": hi}]
    if prefix == "ne":
        return [{"$lt": lo}, {"$gte": hi}]
    if prefix == "ap":
        margin = max(abs(number) / 10, half)
        return [{"$gte": float(number - margin), "$lte": float(number + margin)}]
    # For a single value, "starts after" and "ends before" are "greater" and "less".
    op = {"gt": "$gt", "sa": "$gt", "ge": "$gte", "lt": "$lt", "eb": "$lt", "le": "$lte"}[prefix]
    return [{op: exact}]


def compile(field: str, value: str, modifier: str, name: str, single: bool) -> dict[str, Any]:
    """The MongoDB condition for one ``[prefix]number`` value."""
    check(value, name)
    if modifier:
        raise BadRequest(f"modifier ':{modifier}' is not supported on '{name}'", expression=name)
    prefix, text = split_prefix(value, name)
    number = parse(text, name)
    return any_of([one_element(field, single, {"": ops}) for ops in conditions(prefix, number)])
