"""Queries led by conditions an index answers, so that the embedded database runs them on an index.

SecantusDB answers a filter from an index only when the filter is a single condition, or equalities that
one compound index covers: a top-level ``$and``/``$or`` or one more field (such as the live flag) makes
it scan the collection, and a ``hint`` makes it walk the whole hinted index. So a query is run as an
aggregation whose first ``$match`` is its *lead* (conditions of the query that an index answers and that
every match satisfies) and whose second ``$match`` is the whole query: SecantusDB lifts the first stage
into an index lookup and filters those candidates with the second; ``mongod`` merges adjacent
``$match`` stages and plans them as one query, so the lead changes nothing there.

A long ``$in`` (a professional's thousands of authorized patients) costs SecantusDB a comparison per
listed value for every candidate document. So when the lead selects few candidates, the query is first
run without its long lists (a *relaxed* query, which matches at least what the query matches) to read
the values those matches hold, and each list is cut to them: no candidate's match changes. When the
relaxed query finds only a few documents, their ids lead the query instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]
# The conditions of the first $match: one field, or equalities on the leading fields of one index.
Lead = Mapping[str, Any]

_SCALARS = (str, int, float, bool, datetime)
_LOWER = ("$gte", "$gt")
_UPPER = ("$lte", "$lt")
# An $in longer than this is cut to the values the lead's candidates hold, when they are at most _PROBE.
_LONG_IN = 64
_PROBE = 1000
# Guessed index entries selected by a string prefix and by a one-sided range.
PREFIX, RANGE = 100, 1_000_000


@dataclass(frozen=True)
class Shape:
    """What a condition selects from an index: ``entries`` guessed (per value when ``by_value``: the
    caller weighs it by how selective one value of the field is), and the condition to lead with."""

    entries: int
    condition: Any
    by_value: bool = False


def lead_condition(condition: Any) -> Shape | None:
    """How many index entries a condition may select, as a guess without knowing the field: the number
    of values of an equality or ``$in`` (callers weigh it by how selective the field is), a fixed guess
    for a prefix, a large one for a range; and the condition to lead with. None when an index lookup
    would not answer it exactly."""
    if isinstance(condition, _SCALARS):
        return Shape(1, condition, by_value=True)
    if not isinstance(condition, dict) or len(condition) != 1:
        # Two bounds stay in the full query: on a multikey field they may hold for different values,
        # which an index interval would miss. One bound is always answered exactly.
        if isinstance(condition, dict):
            for op in (*_LOWER, *_UPPER):
                if op in condition and isinstance(condition[op], _SCALARS):
                    return Shape(RANGE, {op: condition[op]})
        return None
    ((op, value),) = condition.items()
    if op == "$eq" and isinstance(value, _SCALARS):
        return Shape(1, value, by_value=True)
    if op == "$in" and isinstance(value, list) and value and all(isinstance(v, _SCALARS) for v in value):
        return Shape(len(value), condition, by_value=True)
    if op == "$regex" and isinstance(value, str) and (prefix := literal_prefix(value)):
        # An interval holds every string with the prefix; whichever values of a multikey field the
        # index finds in it, the full query then keeps exactly the documents the pattern matches.
        return Shape(PREFIX, {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)})
    if op in (*_LOWER, *_UPPER) and isinstance(value, _SCALARS):
        return Shape(RANGE, condition)
    return None


def literal_prefix(pattern: str) -> str:
    """The literal text an anchored pattern starts with (``^dup\\-`` → ``dup-``); empty when none."""
    if not pattern.startswith("^"):
        return ""
    out: list[str] = []
    i = 1
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern) and not pattern[i + 1].isalnum():
                out.append(pattern[i + 1])
                i += 2
                continue
            break
        if ch in ".^$*+?{}[]()|":
            # A quantifier applies to the character before it, which is then not certain.
            if ch in "*?{" and out:
                out.pop()
            break
        out.append(ch)
        i += 1
    return "".join(out)


def conjuncts(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The top-level conditions of a query that every match satisfies, one field each."""
    out: list[dict[str, Any]] = []
    for key, value in query.items():
        if key == "$and":
            for part in value:
                out.extend(conjuncts(part))
        elif not key.startswith("$"):
            out.append({key: value})
    return out


def lead_on(query: Mapping[str, Any], fields: Sequence[str]) -> Lead | None:
    """The first indexable top-level condition of ``query`` on one of ``fields`` (in that order)."""
    found: dict[str, Shape] = {}
    for part in conjuncts(query):
        for f, c in part.items():
            shape = lead_condition(c)
            if shape is not None and (f not in found or shape.entries < found[f].entries):
                found[f] = shape
    for field in fields:
        if field in found:
            return {field: found[field].condition}
    return None


def _is_long_in(condition: Any) -> bool:
    return isinstance(condition, dict) and len(condition.get("$in") or ()) > _LONG_IN


def _long_ins(query: Mapping[str, Any], out: set[str]) -> set[str]:
    """The fields of ``query`` compared with a long ``$in`` (at the top or under ``$and``/``$or``/``$nor``)."""
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            for part in value:
                _long_ins(part, out)
        elif not key.startswith("$") and _is_long_in(value):
            out.add(key)
    return out


def _cut(query: Mapping[str, Any], held: dict[str, set[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            out[key] = [_cut(part, held) for part in value]
        elif key in held and isinstance(value, dict) and isinstance(value.get("$in"), list):
            out[key] = {**value, "$in": [v for v in value["$in"] if not _hashable(v) or v in held[key]]}
        else:
            out[key] = value
    return out


def _relaxed(query: Mapping[str, Any], fields: set[str]) -> dict[str, Any]:
    """``query`` with its long ``$in`` conditions on ``fields`` dropped where that only widens it (at the
    top and under ``$and``/``$or``; under ``$nor`` a condition is kept)."""
    out: dict[str, Any] = {}
    for key, value in query.items():
        if key in ("$and", "$or"):
            out[key] = [_relaxed(part, fields) for part in value]
        elif key in fields and _is_long_in(value):
            continue
        else:
            out[key] = value
    return out


def _hashable(value: Any) -> bool:
    return isinstance(value, _SCALARS)


def _values(doc: Mapping[str, Any], path: str) -> list[Any]:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    items = node if isinstance(node, list) else [node]
    return [v for v in items if _hashable(v)]


async def narrowed(
    db: AsyncDatabase[Document],
    collection: str,
    query: Mapping[str, Any],
    lead: Lead | None,
    session: AsyncClientSession | None = None,
) -> tuple[Mapping[str, Any], Lead | None]:
    """``query`` with its long ``$in`` lists cut to the values its matches hold, and the lead to run it
    with (the matches' ids when they are few)."""
    fields = _long_ins(query, set()) if lead else set()
    if not fields or lead is None:
        return query, lead
    stages = pipeline(_relaxed(query, fields), lead, limit=_PROBE + 1, projection={f: 1 for f in fields})
    docs = [d async for d in await db[collection].aggregate(stages, session=session)]
    if len(docs) > _PROBE:
        return query, lead
    cut = _cut(query, {f: {v for d in docs for v in _values(d, f)} for f in fields})
    if len(docs) <= _LONG_IN:
        # Every match is among these: looked up by id, no other candidate is read.
        return cut, {"_id": {"$in": [d["_id"] for d in docs]}}
    return cut, lead


def _without(query: Mapping[str, Any], lead: Lead) -> dict[str, Any]:
    """``query`` without the conditions the lead's stage already applied (a long ``$in`` costs
    SecantusDB a comparison per value and document, even where it holds for every candidate)."""
    out: dict[str, Any] = {}
    for key, value in query.items():
        if key == "$and":
            parts = [_without(part, lead) for part in value if dict(part) != dict(lead)]
            parts = [p for p in parts if p]
            if parts:
                out[key] = parts
        elif key in lead and len(lead) == 1 and lead[key] == value:
            continue
        else:
            out[key] = value
    return out


def pipeline(
    query: Mapping[str, Any],
    lead: Lead | None,
    sort: Sequence[tuple[str, int]] | None = None,
    limit: int = 0,
    projection: Mapping[str, Any] | None = None,
) -> list[Document]:
    """The aggregation that runs ``query`` led by ``lead``, sorted, limited and projected."""
    stages: list[Document] = [{"$match": dict(lead)}] if lead else []
    stages.append({"$match": _without(query, lead) if lead else dict(query)})
    if sort:
        stages.append({"$sort": dict(sort)})
    if limit:
        stages.append({"$limit": limit})
    if projection:
        stages.append({"$project": dict(projection)})
    return stages


async def find_led(
    db: AsyncDatabase[Document],
    collection: str,
    query: Mapping[str, Any],
    lead: Lead | None,
    *,
    projection: Mapping[str, Any] | None = None,
    sort: Sequence[tuple[str, int]] | None = None,
    limit: int = 0,
    session: AsyncClientSession | None = None,
) -> list[Document]:
    """The documents of ``collection`` matching ``query``, found through ``lead`` when there is one."""
    coll = db[collection]
    if lead is None:
        cursor = coll.find(dict(query), projection, session=session, limit=limit)
        if sort:
            cursor = cursor.sort(list(sort))
        return [d async for d in cursor]
    query, lead = await narrowed(db, collection, query, lead, session)
    stages = pipeline(query, lead, sort, limit, projection)
    return [d async for d in await coll.aggregate(stages, session=session)]


def short_lists(values: Sequence[Any]) -> list[list[Any]]:
    """``values`` cut into lists short enough for an ``$in`` that SecantusDB answers fast."""
    return [list(values[i : i + _LONG_IN]) for i in range(0, len(values), _LONG_IN)]


async def find_in(
    db: AsyncDatabase[Document],
    collection: str,
    field: str,
    values: Sequence[Any],
    query: Mapping[str, Any] | None = None,
    *,
    projection: Mapping[str, Any] | None = None,
    session: AsyncClientSession | None = None,
) -> list[Document]:
    """The documents of ``collection`` whose ``field`` holds one of ``values`` and that match ``query``,
    each once. SecantusDB compares every candidate with every value of an ``$in``, so a long list is
    read as short ones: thousands of ids cost it seconds as one list, milliseconds as lists of 64."""
    found: dict[Any, Document] = {}
    for part in short_lists(values):
        condition = {field: {"$in": part}}
        if not query:
            full: Mapping[str, Any] = condition
        elif field in query:
            full = {"$and": [dict(query), condition]}
        else:
            full = {**query, **condition}
        for doc in await find_led(db, collection, full, condition, projection=projection, session=session):
            found.setdefault(doc["_id"], doc)
    return list(found.values())


async def stream_led(
    db: AsyncDatabase[Document],
    collection: str,
    query: Mapping[str, Any],
    lead: Lead,
    *,
    projection: Mapping[str, Any] | None = None,
    sort: Sequence[tuple[str, int]] | None = None,
    batch_size: int = 1000,
) -> Any:
    """A cursor over the matches of ``query`` (led by ``lead``), read in batches: for scans too long to
    hold in memory (bulk export)."""
    stages = pipeline(query, lead, sort, 0, projection)
    return await db[collection].aggregate(stages, batchSize=batch_size)


async def count_led(
    db: AsyncDatabase[Document],
    collection: str,
    query: Mapping[str, Any],
    lead: Lead | None,
    session: AsyncClientSession | None = None,
) -> int:
    """How many documents of ``collection`` match ``query``."""
    if lead is None:
        return await db[collection].count_documents(dict(query), session=session)
    query, lead = await narrowed(db, collection, query, lead, session)
    stages = [*pipeline(query, lead), {"$count": "n"}]
    rows = [d async for d in await db[collection].aggregate(stages, session=session)]
    return int(rows[0]["n"]) if rows else 0


async def distinct_led(
    db: AsyncDatabase[Document],
    collection: str,
    field: str,
    query: Mapping[str, Any],
    lead: Lead | None,
    session: AsyncClientSession | None = None,
) -> list[Any]:
    """The distinct values of ``field`` (arrays flattened) over the documents matching ``query``."""
    if lead is None:
        return await db[collection].distinct(field, dict(query), session=session)
    query, lead = await narrowed(db, collection, query, lead, session)
    stages = [
        *pipeline(query, lead, projection={field: 1}),
        {"$unwind": f"${field}"},
        {"$group": {"_id": f"${field}"}},
    ]
    return [d["_id"] async for d in await db[collection].aggregate(stages, session=session)]
