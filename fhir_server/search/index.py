"""Index extraction at write time: the ``idx`` values, ``srt`` sort keys and patient compartments
stored with a resource, and the MongoDB indexes that back every advertised parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_server.search.kinds import composite
from fhir_server.search.registry import SPECIAL, compartment_params, supported_params
from fhir_server.search.request import KIND_MODULES, SORTABLE
from fhir_server.storage.indexes import IndexKeys

# A resource without a value sorts first, with a sentinel of the kind's BSON type, so that keyset
# comparisons (which MongoDB makes within one type) always apply.
_SENTINEL: dict[str, Any] = {
    "string": "",
    "token": "",
    "reference": "",
    "uri": "",
    "date": datetime(1, 1, 1, tzinfo=UTC),
    "number": float("-inf"),
    "quantity": float("-inf"),
}

# Compound indexes for the queries EHRs run most (patient + type + date, patient + created,
# family + birthdate). At most one array field in each: MongoDB cannot index parallel arrays.
_COMPOUND: dict[str, list[IndexKeys]] = {
    "DocumentReference": [[("idx.patient", 1), ("idx.type", 1), ("idx.date.lo", -1)]],
    "ExplanationOfBenefit": [[("idx.patient", 1), ("idx.created.lo", -1)]],
    "Patient": [[("idx.family", 1), ("idx.birthdate.lo", 1)], [("idx.given", 1), ("idx.birthdate.lo", 1)]],
}


@dataclass(frozen=True)
class Derived:
    """What is stored beside a resource for search."""

    index: dict[str, Any]
    sort_keys: dict[str, Any]
    compartments: list[str]


def derive(rtype: str, rid: str, resource: dict[str, Any]) -> Derived:
    """Index values, sort keys and compartments of ``resource``."""
    index: dict[str, Any] = {}
    sort_keys: dict[str, Any] = {}
    for code, p in supported_params(rtype).items():
        if p.code in SPECIAL or p.evaluate is None:
            continue
        values = p.evaluate(resource)
        if p.kind == "composite":
            if joined := composite.extract(values, p.components):
                index[code] = joined
            continue
        module = KIND_MODULES[p.kind]
        for suffix, stored in module.extract(values, p.single).items():
            index[f"{code}:{suffix}" if suffix else code] = stored
        if p.kind in SORTABLE:
            key = module.sort_key(values) if values else None
            sort_keys[code] = _SENTINEL[p.kind] if key is None else key
    return Derived(index, sort_keys, patient_compartments(rtype, rid, resource))


def _reference_ids(values: list[Any], rtype: str) -> list[str]:
    prefix = rtype + "/"
    out = []
    for v in values:
        ref = v.get("reference") if isinstance(v, dict) else None
        if isinstance(ref, str) and prefix in ref:
            # "Patient/1", "Patient/1/_history/2", or an absolute URL ending so.
            tail = ref.split(prefix, 1)[1] if ref.startswith(prefix) else ref.rsplit("/" + prefix, 1)[-1]
            out.append(tail.split("/", 1)[0])
    return out


def patient_compartments(rtype: str, rid: str, resource: dict[str, Any]) -> list[str]:
    """The ids of the patients whose compartment holds this resource."""
    ids: set[str] = {rid} if rtype == "Patient" else set()
    for p in compartment_params().get(rtype, ()):
        if p.evaluate is not None:
            ids.update(_reference_ids(p.evaluate(resource), "Patient"))
    return sorted(ids)


def index_specs(types: tuple[str, ...]) -> dict[str, list[IndexKeys]]:
    """The MongoDB indexes backing every advertised parameter, per type."""
    out: dict[str, list[IndexKeys]] = {}
    for rtype in types:
        specs: list[IndexKeys] = [[("comp", 1)]]
        for p in supported_params(rtype).values():
            if p.code in SPECIAL:
                continue
            if p.kind == "date":
                # One index per bound: a prefix such as ge becomes an $or over hi and lo, and each
                # branch needs an index of its own or the whole $or scans the collection.
                specs.append([(f"idx.{p.code}.lo", 1)])
                specs.append([(f"idx.{p.code}.hi", 1)])
            elif p.kind == "quantity":
                specs.append([(f"idx.{p.code}.v", 1)])
            else:
                specs.append([(f"idx.{p.code}", 1)])
        specs.extend(_COMPOUND.get(rtype, []))
        out[rtype] = specs
    return out
