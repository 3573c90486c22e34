"""``Patient/[id]/$everything`` (FHIR R4): the patient, everything in its compartment and the shared
resources those refer to (Practitioner, PractitionerRole, Organization, Medication), within the caller's
access, as a paged ``searchset`` Bundle.

Pages run type after type (Patient first, then the compartment types in alphabetical order), each type
with the search engine's keyset paging, so a ``next`` link keeps its place while resources are written:
the cursor is ``<type index>.<the engine's cursor within that type>``. The referenced resources of a
page's matches come with it as ``include`` entries. ``_since`` keeps resources updated after an instant,
``_type`` narrows the types, ``_count`` sets the page size. The care-date window (``start``/``end``) is
not supported: the parameter is refused rather than silently ignored.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.responses import Response

from fhir_server.api.http import json_response, negotiate
from fhir_server.fhir.dates import date_range
from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.searchset import split_cursor
from fhir_server.operations._patient import (
    REFERENCED_TYPES,
    Json,
    entry,
    may_search,
    open_patient,
    operation_params,
    patient_operation,
    references,
    resolve,
)
from fhir_server.operations.registry import OperationCall
from fhir_server.search.registry import compartment_params
from fhir_server.search.request import parse_search
from fhir_server.storage.repository import Record

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
_KNOWN = {"_since", "_type", "_count", "_cursor", "_format", "_pretty"}


def _types(call: OperationCall, wanted: set[str] | None) -> tuple[list[str], list[str]]:
    """The types whose resources are matches, and the referenced types that are included."""
    compartment = ["Patient", *sorted(t for t in compartment_params() if t != "Patient")]
    matched = [t for t in compartment if (wanted is None or t in wanted) and may_search(call, t)]
    included = [t for t in REFERENCED_TYPES if wanted is None or t in wanted]
    return matched, included


def _wanted(params: QueryParams) -> set[str] | None:
    values = [v for k, v in params.multi_items() if k == "_type"]
    if not values:
        return None
    names = {n.strip() for v in values for n in v.split(",") if n.strip()}
    allowed = {"Patient", *compartment_params(), *REFERENCED_TYPES}
    unknown = sorted(names - allowed)
    if unknown:
        raise BadRequest(
            f"_type {', '.join(unknown)}: $everything returns the patient, the types of its compartment "
            f"and {', '.join(REFERENCED_TYPES)}",
            expression="_type",
        )
    if not names - set(REFERENCED_TYPES):
        raise BadRequest(
            "_type must name the patient or a type of its compartment (referenced resources come with them)",
            expression="_type",
        )
    return names


async def _page(
    call: OperationCall, types: list[str], criteria: list[tuple[str, str]], count: int, cursor: str | None
) -> tuple[list[Record], str | None]:
    """One page of matches from the types in order, and the cursor of the next page."""
    start, inner = split_cursor(cursor, len(types))
    engine = call.services.engine
    matches: list[Record] = []
    for i in range(start, len(types)):
        if len(matches) >= count:
            return matches, f"{i}."
        rtype = types[i]
        params = [*criteria, ("_total", "none")]
        if rtype == "Patient":
            params.append(("_id", call.rid or ""))
        if i == start and inner:
            params.append(("_cursor", inner))
        req = parse_search(rtype, params, default_count=count, max_count=count, strict=True)
        result = await engine.search(
            replace(req, count=count - len(matches)),
            call.access.restrict,
            compartment=None if rtype == "Patient" else call.rid,
        )
        matches += result.matches
        if result.next_cursor:
            return matches, f"{i}.{result.next_cursor}"
    return matches, None


async def everything(call: OperationCall) -> Response:
    """Answer ``GET`` (or ``POST``) ``Patient/[id]/$everything``."""
    negotiate(call.request)
    await open_patient(call)
    query = await operation_params(call)
    unsupported = sorted(k for k in query if k not in _KNOWN)
    if unsupported:
        raise BadRequest(
            f"$everything does not support {', '.join(unsupported)}",
            code="not-supported",
            expression=unsupported[0],
        )
    default, maximum = call.services.page_size
    count_raw = query.get("_count")
    if count_raw is not None and (not count_raw.isdigit() or int(count_raw) < 1):
        raise BadRequest(f"_count must be a positive whole number, not '{count_raw}'", expression="_count")
    count = min(int(count_raw), maximum) if count_raw else default
    criteria: list[tuple[str, str]] = []
    since = query.get("_since")
    if since is not None:
        date_range(since, "_since")
        criteria.append(("_lastUpdated", f"gt{since}"))
    wanted = _wanted(query)
    matched, included = _types(call, wanted)
    matches, next_cursor = await _page(call, matched, criteria, count, query.get("_cursor"))
    seen = {f"{r.rtype}/{r.id}" for r in matches}
    refs = [ref for rec in matches for ref in references(rec.resource, included) if ref not in seen]
    found = await resolve(call, refs)
    base = call.services.base
    applied = [(k, v) for k, v in query.multi_items() if k in {"_since", "_type"}] + [("_count", str(count))]
    url = f"{base}/Patient/{call.rid}/$everything"
    links = [{"relation": "self", "url": f"{url}?{urlencode(applied)}"}]
    if next_cursor:
        links.append({"relation": "next", "url": f"{url}?{urlencode([*applied, ('_cursor', next_cursor)])}"})
    bundle: Json = {"resourceType": "Bundle", "type": "searchset", "link": links}
    entries = [entry(base, r, "match") for r in matches]
    entries += [entry(base, found[ref], "include") for ref in dict.fromkeys(refs) if ref in found]
    if entries:
        bundle["entry"] = entries
    return json_response(call.request, bundle)


OPERATION = patient_operation(
    "everything",
    everything,
    DEFINITION,
    "The patient, its compartment and the resources they refer to, within the caller's access; _since, "
    "_type, _count with keyset paging.",
)
