"""Index extraction at write time: the ``idx`` values and patient compartments stored with a resource."""

from __future__ import annotations

from typing import Any

from fhir_server.search.kinds import token
from fhir_server.search.registry import SPECIAL, compartment_params, supported_params
from fhir_server.storage.indexes import IndexKeys

_EXTRACTORS = {"token": token.extract}


def extract_index(rtype: str, resource: dict[str, Any]) -> dict[str, list[Any]]:
    """Every supported parameter's index values for ``resource`` (empty ones left out)."""
    out: dict[str, list[Any]] = {}
    for code, p in supported_params(rtype).items():
        extractor = _EXTRACTORS.get(p.kind)
        if extractor is None or p.evaluate is None:
            continue
        values = extractor(p.evaluate(resource))
        if values:
            out[code] = values
    return out


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
            if p.code not in SPECIAL:
                specs.append([(p.field, 1)])
        out[rtype] = specs
    return out
