"""Choose the condition a search is led by: the one an index answers best (see ``storage/lead.py``).

From the filter's top-level conjuncts on fields that lead an index, the most selective: an equality or
``$in`` before a prefix before a range, and among those the most selective kind (id, compartment,
reference, token, date, string). With no such conjunct there is no lead and the database decides.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_server.search.index import index_specs
from fhir_server.search.registry import supported_params
from fhir_server.storage.lead import Lead, conjuncts, lead_condition

_RANK = {
    "composite": 2,
    "reference": 2,
    "token": 3,
    "date": 4,
    "string": 5,
    "uri": 6,
    "number": 7,
    "quantity": 7,
}


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
def _leading_fields(rtype: str) -> frozenset[str]:
    return frozenset({"_id", *(keys[0][0] for keys in index_specs((rtype,)).get(rtype, []))})


def choose_lead(rtype: str, filt: dict[str, Any]) -> Lead | None:
    """The condition of ``filt`` to run it on an index, or None to let the database decide."""
    best: tuple[tuple[int, int, str], Lead] | None = None
    leading = _leading_fields(rtype)
    for conjunct in conjuncts(filt):
        for field, condition in conjunct.items():
            rank = _rank(rtype, field) if field in leading else None
            shape = lead_condition(condition) if rank is not None else None
            if rank is None or shape is None:
                continue
            key = (shape[0], rank, field)
            if best is None or key < best[0]:
                best = key, {field: shape[1]}
    return best[1] if best else None
