"""Choose the index a search runs on, and pass it to MongoDB as a ``hint``.

SecantusDB (the embedded default) uses an index only when one index covers every field of the filter;
with the live flag and a second criterion it falls back to a collection scan. So the engine picks the
index itself from the filter's top-level conjuncts, the way ``mongod``'s planner would for these
shapes: the most selective kind first (id, compartment, reference, token, date, string), a compound
index when its leading fields are all constrained. With no indexable conjunct there is no hint.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_server.search.index import index_specs
from fhir_server.search.registry import supported_params
from fhir_server.storage.indexes import IndexKeys, index_name

_RANK = {"reference": 2, "token": 3, "date": 4, "string": 5, "uri": 6, "number": 7, "quantity": 7}


def _conjuncts(filt: dict[str, Any]) -> list[dict[str, Any]]:
    if list(filt) == ["$and"]:
        return [c for part in filt["$and"] for c in _conjuncts(part)]
    return [{k: v} for k, v in filt.items()]


def _indexable(condition: Any) -> bool:
    """Whether a condition on a field can be answered from an index on it."""
    if not isinstance(condition, dict):
        return True  # equality
    ops = set(condition)
    return (
        bool(ops)
        and ops <= {"$in", "$gt", "$gte", "$lt", "$lte", "$eq", "$regex", "$elemMatch"}
        and not ("$regex" in ops and not str(condition["$regex"]).startswith("^"))
    )


def _rank(rtype: str, field: str) -> int | None:
    if field == "_id":
        return 0
    if field == "comp":
        return 1
    if not field.startswith("idx."):
        return None
    code = field[4:].split(".", 1)[0].split(":", 1)[0]
    p = supported_params(rtype).get(code)
    return _RANK.get(p.kind) if p else None


@cache
def _indexes(rtype: str) -> list[IndexKeys]:
    return index_specs((rtype,)).get(rtype, [])


def choose_hint(rtype: str, filt: dict[str, Any]) -> str | None:
    """The name of the index to run ``filt`` on, or None to let the database decide."""
    fields: dict[str, int] = {}
    for conjunct in _conjuncts(filt):
        for field, condition in conjunct.items():
            rank = None if field.startswith("$") or not _indexable(condition) else _rank(rtype, field)
            if rank is not None:
                fields[field] = min(rank, fields.get(field, rank))
    if not fields:
        return None
    # A compound index whose leading fields are all constrained beats a single-field one.
    compounds = [k for k in _indexes(rtype) if len(k) > 1 and k[0][0] in fields and k[1][0] in fields]
    if compounds and min(fields.values()) > 0:
        return index_name(max(compounds, key=lambda k: sum(1 for f, _ in k if f in fields)))
    singles = {keys[0][0]: index_name(keys) for keys in _indexes(rtype) if len(keys) == 1}
    singles["_id"] = "_id_"
    for field in sorted(fields, key=lambda f: (fields[f], f)):
        if field in singles:
            return singles[field]
    return None
