"""Quantity parameters: Quantity, Age, Duration, Distance, Count, SimpleQuantity and Money.

Each value is stored as ``{"v": float, "s": system, "c": code, "u": unit}`` (absent parts left out; Money
stores its currency as ``c`` under the ISO 4217 system), an array unless the parameter is single. A search
``[prefix]number|system|code`` compares the number as a number parameter does (same precision rules) AND
the units on the SAME stored value: ``system|code`` must match ``s`` and ``c`` exactly, ``|code`` (no
system) matches ``c`` or the human ``u``, and a bare number ignores units. Units are not converted: ``1 g``
does not match ``1000 mg``.
"""

from __future__ import annotations

from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import number
from fhir_server.search.kinds._syntax import any_of, check, one_element, shape, split_bars, split_prefix

MODIFIERS: frozenset[str] = frozenset()

_CURRENCY_SYSTEM = "urn:iso:std:iso:4217"


def _entry(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    v = number.as_float(value.get("value"))
    if v is None:
        return None
    out: dict[str, Any] = {"v": v}
    if isinstance(value.get("currency"), str):
        out["s"], out["c"] = _CURRENCY_SYSTEM, value["currency"]
        return out
    for key, part in (("s", "system"), ("c", "code"), ("u", "unit")):
        if isinstance(value.get(part), str):
            out[key] = value[part]
    return out


def _entries(values: list[Any]) -> list[dict[str, Any]]:
    return [e for e in map(_entry, values) if e is not None]


def extract(values: list[Any], single: bool) -> dict[str, Any]:
    """The main field: one ``{v, s, c, u}`` object per quantity that has a value."""
    entries = _entries(values)
    return {"": shape(entries, single)} if entries else {}


def sort_key(values: list[Any]) -> Any:
    """The smallest value (whatever its unit)."""
    return min((e["v"] for e in _entries(values)), default=None)


def _unit_clauses(parts: list[str], name: str) -> list[dict[str, Any]]:
    """Alternatives of unit conditions for the ``|system|code`` part of a search value."""
    if len(parts) == 1:
        return [{}]
    if len(parts) != 3:
        raise BadRequest(f"a quantity for '{name}' is number|system|code", expression=name)
    _, system, code = parts
    if system and code:
        return [{"s": system, "c": code}]
    if system:
        return [{"s": system}]
    if code:
        return [{"c": code}, {"u": code}]
    # "5.4||" says nothing about units.
    return [{}]


def compile(field: str, value: str, modifier: str, name: str, single: bool) -> dict[str, Any]:
    """The MongoDB condition for one ``[prefix]number[|system|code]`` value."""
    check(value, name)
    if modifier:
        raise BadRequest(f"modifier ':{modifier}' is not supported on '{name}'", expression=name)
    parts = split_bars(value)
    prefix, text = split_prefix(parts[0], name)
    amount = number.parse(text, name)
    units = _unit_clauses(parts, name)
    return any_of(
        [
            one_element(field, single, {"v": ops, **unit})
            for ops in number.conditions(prefix, amount)
            for unit in units
        ]
    )
