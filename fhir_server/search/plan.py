"""Choose the condition a search is led by: the one an index answers best (see ``storage/lead.py``).

From the filter's top-level conjuncts on fields that lead an index, the one guessed to select the fewest
index entries: an equality or ``$in`` weighs its number of values by how many resources one value of its
kind usually selects (an id or a reference one, a token such as a document type many), a prefix and a
range weigh what storage/lead.py guesses. So a patient's search is led by its patient, not by a
policy's ``$in`` of the thousands of patients a professional may see. With no such conjunct there is no
lead and the database decides.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_server.search.index import index_specs
from fhir_server.search.registry import supported_params
from fhir_server.storage.lead import Lead, conjuncts, lead_condition

# Resources one value of a kind is guessed to select (by equality).
_PER_VALUE = {
    "composite": 1,
    "reference": 1,
    "string": 10,
    "uri": 10,
    "token": 50,
    "number": 100,
    "quantity": 100,
}


def _per_value(rtype: str, field: str) -> int | None:
    if field in ("_id", "comp"):
        return 1
    if not field.startswith("idx."):
        return None
    code = field[4:].split(".", 1)[0].split(":", 1)[0]
    p = supported_params(rtype).get(code)
    return _PER_VALUE.get(p.kind, 100) if p else None


@cache
def _leading_fields(rtype: str) -> frozenset[str]:
    return frozenset({"_id", *(keys[0][0] for keys in index_specs((rtype,)).get(rtype, []))})


def choose_lead(rtype: str, filt: dict[str, Any]) -> Lead | None:
    """The condition of ``filt`` to run it on an index, or None to let the database decide."""
    best: tuple[tuple[int, str], Lead] | None = None
    leading = _leading_fields(rtype)
    for conjunct in conjuncts(filt):
        for field, condition in conjunct.items():
            weight = _per_value(rtype, field) if field in leading else None
            shape = lead_condition(condition) if weight is not None else None
            if weight is None or shape is None:
                continue
            guess = shape.entries * weight if shape.by_value else shape.entries
            key = (guess, field)
            if best is None or key < best[0]:
                best = key, {field: shape.condition}
    return best[1] if best else None
