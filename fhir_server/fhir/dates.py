"""FHIR date, dateTime and instant values as UTC ranges ``[start, end)``.

A partial value is the whole period it names: ``2024`` is the year 2024, ``2024-03-01T10:00`` that
minute. Values without a time zone are taken as UTC (the server's zone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from fhir_server.fhir.errors import BadRequest

_PATTERN = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _add_months(dt: datetime, months: int) -> datetime:
    y, m = divmod(dt.month - 1 + months, 12)
    return dt.replace(year=dt.year + y, month=m + 1)


def date_range(value: str, name: str) -> tuple[datetime, datetime]:
    """The UTC range ``[start, end)`` a FHIR date/dateTime/instant covers; 400 naming ``name`` if bad."""
    m = _PATTERN.match(value)
    if not m:
        raise BadRequest(f"'{value}' is not a valid FHIR date/dateTime for '{name}'", expression=name)
    g = m.groupdict()
    try:
        tz: timezone = UTC
        if g["tz"] and g["tz"] != "Z":
            sign = 1 if g["tz"][0] == "+" else -1
            hh, mm = int(g["tz"][1:3]), int(g["tz"][4:6])
            tz = timezone(timedelta(minutes=sign * (hh * 60 + mm)))
        frac = g["f"] or ""
        start = datetime(
            int(g["y"]),
            int(g["m"] or 1),
            int(g["d"] or 1),
            int(g["H"] or 0),
            int(g["M"] or 0),
            int(g["S"] or 0),
            int((frac + "000000")[:6]),
            tzinfo=tz,
        ).astimezone(UTC)
    except ValueError as exc:
        raise BadRequest(f"'{value}' is not a valid date for '{name}': {exc}", expression=name) from exc
    if g["m"] is None:
        end = _add_months(start, 12)
    elif g["d"] is None:
        end = _add_months(start, 1)
    elif g["H"] is None:
        end = start + timedelta(days=1)
    elif g["S"] is None:
        end = start + timedelta(minutes=1)
    elif not frac:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(microseconds=max(1, 10 ** (6 - min(len(frac), 6))))
    return start, end


def instant(dt: datetime) -> str:
    """A FHIR instant with millisecond precision in UTC (as MongoDB stores it)."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> datetime:
    """Now, truncated to the millisecond precision MongoDB keeps."""
    n = datetime.now(UTC)
    return n.replace(microsecond=(n.microsecond // 1000) * 1000)
