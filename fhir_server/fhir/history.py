"""``_history`` at instance, type and system level: a ``history`` Bundle, newest first, keyset-paged."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.auth.access import Access
from fhir_server.auth.scopes import READ
from fhir_server.fhir.dates import date_range, instant
from fhir_server.fhir.errors import BadRequest, NotFound
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.storage.repository import HistoryQuery, Record, Repository

Json = dict[str, Any]
_METHOD = {
    "create": ("POST", "201 Created"),
    "update": ("PUT", "200 OK"),
    "delete": ("DELETE", "204 No Content"),
}


def encode_cursor(lu: datetime, key: str) -> str:
    """An opaque page cursor for the version after which a page starts."""
    raw = orjson.dumps([int(lu.timestamp() * 1000), key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, str]:
    try:
        ms, key = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return datetime.fromtimestamp(int(ms) / 1000, UTC), str(key)
    except (ValueError, TypeError) as exc:
        raise BadRequest("the page cursor is not valid", expression="_cursor") from exc


def parse_count(value: str | None, default: int, maximum: int) -> int:
    """``_count``: a whole number ≥ 0, capped at the configured maximum."""
    if value is None:
        return default
    if not value.isdigit():
        raise BadRequest(f"_count '{value}' is not a whole number", expression="_count")
    return min(int(value), maximum)


def history_entry(base: str, rec: Record) -> Json:
    """One history Bundle entry for a version."""
    method, status = _METHOD[rec.op or "update"]
    path = rec.rtype if method == "POST" else f"{rec.rtype}/{rec.id}"
    entry: Json = {"fullUrl": f"{base}/{rec.rtype}/{rec.id}"}
    if rec.resource is not None:
        entry["resource"] = rec.resource
    entry["request"] = {"method": method, "url": path}
    entry["response"] = {
        "status": status,
        "etag": f'W/"{rec.version}"',
        "lastModified": instant(rec.last_updated),
    }
    return entry


async def history_bundle(
    repo: Repository,
    base: str,
    path: str,
    params: Sequence[tuple[str, str]],
    rtype: str | None,
    rid: str | None,
    page_size: tuple[int, int],
    access: Access | None = None,
) -> Json:
    """The ``history`` Bundle for ``[base]/path?params``: the versions the caller's ``access`` lets it
    read (the types it may read; a patient scope's compartment)."""
    access = access or Access.full()
    if rtype is not None:
        access.require(rtype, READ)
        restrict = access.history_filter([rtype])
    else:
        restrict = access.history_filter([t for t in SERVED_TYPES if access.allows(t, READ)], True)
    values = dict(params)
    count = parse_count(values.get("_count"), *page_size)
    since = date_range(values["_since"], "_since")[0] if "_since" in values else None
    at = date_range(values["_at"], "_at") if "_at" in values else None
    after = decode_cursor(values["_cursor"]) if "_cursor" in values else None
    q = HistoryQuery(
        rtype, rid, since, at[0] if at else None, at[1] if at else None, after, count + 1, restrict
    )
    records, total = await repo.history(q)
    if rid is not None and total == 0 and since is None and at is None:
        raise NotFound(f"{rtype}/{rid} has no history: it never existed")
    more = len(records) > count
    records = records[:count]
    kept = [(k, v) for k, v in params if k in {"_count", "_since", "_at"}]
    url = f"{base}/{path}"
    links = [{"relation": "self", "url": url + ("?" + urlencode(list(params)) if params else "")}]
    if more and records:
        last = records[-1]
        cursor = encode_cursor(last.last_updated, f"{last.rtype}/{last.id}/{last.version}")
        links.append({"relation": "next", "url": url + "?" + urlencode([*kept, ("_cursor", cursor)])})
    bundle: Json = {"resourceType": "Bundle", "type": "history"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if records:
        bundle["entry"] = [history_entry(base, r) for r in records]
    if access.audit is not None:
        level = "history-system" if rtype is None else "history-type" if rid is None else "history-instance"
        await access.audit.returned(level, records, links[0]["url"])
    return bundle
