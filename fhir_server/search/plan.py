"""Choose the condition a search is led by: the one an index answers best (see ``storage/lead.py``).

From the filter's top-level conjuncts on fields that lead an index, the one guessed to select the fewest
index entries: an equality or ``$in`` weighs its number of values by how many resources one value of its
kind usually selects (an id or a reference one, a token such as a document type many), a prefix and a
range weigh what storage/lead.py guesses. So a patient's search is led by its patient, not by a
policy's ``$in`` of the thousands of patients a professional may see. With no such conjunct there is no
lead and the database decides.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from fhir_server.search.index import index_specs
from fhir_server.search.registry import compartment_params, supported_params
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
    if field == "_id":
        return 1
    if field == "comp":
        # A patient's compartment holds at least what one of its references selects: on a tie the
        # query's own reference leads.
        return 2
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


_WHERE_PATIENT = ".where(resolve() is Patient)"
_PATIENT_REF = re.compile(r"^(?:.*/)?Patient/([A-Za-z0-9\-.]{1,64})$")


@cache
def _compartment_fields(rtype: str) -> dict[str, bool]:
    """The index fields whose Patient references put a resource in that patient's compartment
    (``comp``), each with whether it holds Patient references only: the compartment's parameters, and
    parameters narrowing one of them to Patients (DocumentReference ``patient`` is ``subject`` so)."""
    params = compartment_params().get(rtype, ())
    codes = {p.code for p in params}
    expressions = {p.expression for p in params}
    out: dict[str, bool] = {"_id": True} if rtype == "Patient" else {}
    for q in supported_params(rtype).values():
        if q.kind != "reference":
            continue
        only_patients = all(part.strip().endswith(_WHERE_PATIENT) for part in q.expression.split("|"))
        if q.code in codes or q.expression.removesuffix(_WHERE_PATIENT) in expressions:
            out[q.field] = only_patients
    return out


def _implied_patients(field: str, condition: Any, only_patients: bool) -> set[str] | None:
    """The patients one of which is in the compartment of every resource matching ``condition``."""
    if isinstance(condition, str):
        values = [condition]
    elif isinstance(condition, dict) and condition.keys() == {"$in"} and isinstance(condition["$in"], list):
        values = condition["$in"]
    else:
        return None
    if field == "_id":
        return {v for v in values if isinstance(v, str)} or None
    ids: set[str] = set()
    for v in values:
        m = _PATIENT_REF.match(v) if isinstance(v, str) else None
        if m:
            ids.add(m.group(1))
        elif not only_patients:
            # A match through another type's reference need not be in any of these compartments.
            return None
    return ids or None


def _cut_compartments(node: Any, patients: set[str]) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            out[key] = [_cut_compartments(part, patients) for part in value]
        elif (
            key == "comp"
            and isinstance(value, dict)
            and value.keys() == {"$in"}
            and isinstance(value["$in"], list)
            and patients <= set(value["$in"])
        ):
            out[key] = {"$in": [v for v in value["$in"] if v in patients]}
        else:
            out[key] = value
    return out


def cut_compartments(rtype: str, filt: dict[str, Any]) -> dict[str, Any]:
    """``filt`` with its compartment lists (a professional's thousands of authorized patients) cut to
    the patients the query itself names, when those are all listed.

    A conjunct such as ``patient=X`` puts X in the compartment of every match; if X is in a list
    ``comp $in L``, that condition holds for every match and so does ``comp $in [X]``: the cut changes
    no result, and spares the database comparing each match with every listed patient."""
    fields = _compartment_fields(rtype)
    implied: set[str] | None = None
    for conjunct in conjuncts(filt):
        for field, condition in conjunct.items():
            if field in fields:
                ids = _implied_patients(field, condition, fields[field])
                if ids is not None and (implied is None or len(ids) < len(implied)):
                    implied = ids
    return _cut_compartments(filt, implied) if implied else filt
