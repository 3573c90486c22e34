"""Date parameters: date, dateTime, instant, Period and Timing, stored as UTC ranges.

Each value is stored as ``{"lo": datetime, "hi": datetime}``, ``hi`` exclusive, at the millisecond precision
MongoDB keeps (``lo`` rounded down, ``hi`` up); an array unless the parameter is single. A partial value is
the whole period it names (``2024-03`` is March). A Period's missing start or end is open (the earliest /
latest representable instant); a Timing is the envelope of its events and bounds.

The search value is a range too, and each prefix is the R4 range relation between the search range
``[slo, shi)`` and ONE stored range ``[lo, hi)``:

- ``eq``: contained, ``lo >= slo and hi <= shi``; ``ne``: not contained, ``lo < slo or hi > shi``;
- ``gt``: reaches after, ``hi > shi``; ``lt``: reaches before, ``lo < slo``;
- ``ge``: ``gt`` or ``eq``, i.e. ``hi > shi or lo >= slo``; ``le``: ``lt`` or ``eq``, i.e. ``lo < slo or hi <= shi``;
- ``sa``: starts after, ``lo >= shi``; ``eb``: ends before, ``hi <= slo``;
- ``ap``: overlaps the search range widened on both sides by 10% of the gap between now and the search
  range (at least one day: a value near now is still approximate to the neighbouring days).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_server.fhir.dates import date_range, now_ms
from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds._syntax import any_of, check, one_element, split_prefix

MODIFIERS: frozenset[str] = frozenset()

# Open ends of a Period: before and after any real date.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MIN_APPROX = timedelta(days=1)
# A "+hh:mm" offset sent unencoded in a URL arrives with the "+" decoded to a space.
_SPACED_OFFSET = re.compile(r"^(.*T[\d:.]+) (\d{2}:\d{2})$")

Range = tuple[datetime, datetime]


def _floor_ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000)


def _ceil_ms(dt: datetime) -> datetime:
    floor = _floor_ms(dt)
    return floor if floor == dt else floor + _MS


def _range(value: str, name: str) -> Range:
    lo, hi = date_range(value, name)
    return _floor_ms(lo), _ceil_ms(hi)


def _ranges(value: Any) -> list[Range]:
    """The stored ranges of one node: a date string, a Period, or a Timing (its envelope)."""
    if isinstance(value, str):
        return [_range(value, "")]
    if not isinstance(value, dict):
        return []
    if "start" in value or "end" in value:
        lo = _range(value["start"], "")[0] if isinstance(value.get("start"), str) else EARLIEST
        hi = _range(value["end"], "")[1] if isinstance(value.get("end"), str) else LATEST
        return [(lo, hi)]
    # Timing: the schedule is ignored, only the outer limits of events and bounds count.
    parts = [r for e in value.get("event", ()) if isinstance(e, str) for r in _ranges(e)]
    bounds = (value.get("repeat") or {}).get("boundsPeriod")
    if isinstance(bounds, dict):
        parts.extend(_ranges(bounds))
    if not parts:
        return []
    return [(min(lo for lo, _ in parts), max(hi for _, hi in parts))]


def _all_ranges(values: list[Any]) -> list[Range]:
    return sorted({r for v in values for r in _ranges(v)})


def extract(values: list[Any], single: bool) -> dict[str, Any]:
    """The main field: one ``{lo, hi}`` range per value."""
    ranges = [{"lo": lo, "hi": hi} for lo, hi in _all_ranges(values)]
    if not ranges:
        return {}
    if single:
        if len(ranges) > 1:
            # Conditions on a scalar use dotted paths, which would mix bounds of different values.
            raise ValueError(f"a single-valued date parameter yielded {len(ranges)} values")
        return {"": ranges[0]}
    return {"": ranges}


def sort_key(values: list[Any]) -> Any:
    """The earliest start."""
    ranges = _all_ranges(values)
    return ranges[0][0] if ranges else None


def _approximate(slo: datetime, shi: datetime, now: datetime) -> Range:
    """The search range widened on each side by 10% of the gap between now and it (at least a day)."""
    gap = slo - now if now < slo else now - shi if now > shi else timedelta(0)
    margin = max(gap / 10, _MIN_APPROX)
    lo = slo - margin if slo - EARLIEST > margin else EARLIEST
    hi = shi + margin if LATEST - shi > margin else LATEST
    return lo, hi


def _clauses(prefix: str, slo: datetime, shi: datetime) -> list[dict[str, Any]]:
    """Alternatives (OR) of conditions on one stored range's ``lo``/``hi``."""
    if prefix == "eq":
        return [{"lo": {"$gte": slo}, "hi": {"$lte": shi}}]
    if prefix == "ne":
        return [{"lo": {"$lt": slo}}, {"hi": {"$gt": shi}}]
    if prefix == "gt":
        return [{"hi": {"$gt": shi}}]
    if prefix == "lt":
        return [{"lo": {"$lt": slo}}]
    if prefix == "ge":
        return [{"hi": {"$gt": shi}}, {"lo": {"$gte": slo}}]
    if prefix == "le":
        return [{"lo": {"$lt": slo}}, {"hi": {"$lte": shi}}]
    if prefix == "sa":
        return [{"lo": {"$gte": shi}}]
    if prefix == "eb":
        return [{"hi": {"$lte": slo}}]
    alo, ahi = _approximate(slo, shi, now_ms())
    return [{"lo": {"$lt": ahi}, "hi": {"$gt": alo}}]


def compile(field: str, value: str, modifier: str, name: str, single: bool) -> dict[str, Any]:
    """The MongoDB condition for one ``[prefix]date`` value."""
    check(value, name)
    if modifier:
        raise BadRequest(f"modifier ':{modifier}' is not supported on '{name}'", expression=name)
    prefix, text = split_prefix(value, name)
    text = _SPACED_OFFSET.sub(r"\1+\2", text)
    slo, shi = _range(text, name)
    condition = any_of([one_element(field, single, clause) for clause in _clauses(prefix, slo, shi)])
    # ge and le are ORs over the two bounds, which no single index answers; each branch implies one
    # plain bound (ranges are never empty, so lo < hi), added so that the search can run on its index.
    if prefix == "ge":
        return {"$and": [{f"{field}.hi": {"$gt": slo}}, condition]}
    if prefix == "le":
        return {"$and": [{f"{field}.lo": {"$lt": shi}}, condition]}
    return condition
