"""``$export`` kick-off (Bulk Data Access IG 2.0.0) at system, ``Patient`` and ``Group/[id]`` level.

Checks the request (``Accept``, ``Prefer: respond-async``, every parameter), decides what the caller
may export (the types its scopes let it read; the research role never gets Binary or AuditEvent),
fixes the transactionTime and queues the job (fhir_server.bulk.jobs); the answer is 202 with the
status URL in ``Content-Location``. Unsupported parameters are a 400 unless the client sent
``Prefer: handling=lenient``, in which case they are ignored and named in the job's error file.
The work itself is done by the export workers (fhir_server.bulk.worker).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.http import json_response, read_body
from fhir_server.auth.access import Access
from fhir_server.auth.policy import DENY, DOCUMENT_TYPES, in_compartment
from fhir_server.auth.scopes import READ
from fhir_server.bulk.deidentify import EXCLUDED_TYPES
from fhir_server.bulk.jobs import ExportSpec, Jobs, owner_of
from fhir_server.fhir.dates import date_range, now_ms
from fhir_server.fhir.errors import BadRequest, Forbidden, NotFound
from fhir_server.fhir.registry import SERVED_TYPES, is_served
from fhir_server.operations.registry import Operation, OperationCall
from fhir_server.search.request import parse_search

OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
_SUPPORTED = frozenset({"_outputFormat", "_since", "_until", "_type", "_typeFilter", "_elements", "patient"})
_ELEMENT = re.compile(r"^([A-Z][A-Za-z]+\.)?[a-z][A-Za-z0-9]*(\[x\])?$")
_PARAMS = list[tuple[str, str]]


class _Lenience:
    """Whether unsupported input is ignored (``Prefer: handling=lenient``), and what was ignored."""

    def __init__(self, request: Request) -> None:
        prefer = [p.strip().lower().replace(" ", "") for p in request.headers.get("prefer", "").split(",")]
        prefer = [q for p in prefer for q in p.split(";")]
        self.lenient = "handling=lenient" in prefer
        self.respond_async = "respond-async" in prefer
        self.notes: list[str] = []

    def refuse(self, message: str, expression: str) -> None:
        """400, or a note when lenient."""
        if not self.lenient:
            raise BadRequest(message, expression=expression, code="not-supported")
        self.notes.append(f"ignored: {message}")


def _check_headers(request: Request, lenience: _Lenience) -> None:
    accept = request.headers.get("accept", "")
    if "application/fhir+json" not in [a.split(";", 1)[0].strip().lower() for a in accept.split(",")]:
        raise BadRequest(
            "an $export kick-off needs 'Accept: application/fhir+json'", expression="Accept", code="required"
        )
    if not lenience.respond_async:
        raise BadRequest(
            "an $export kick-off needs 'Prefer: respond-async'", expression="Prefer", code="required"
        )


def _value(param: dict[str, Any]) -> str:
    """A Parameters entry's value as the string the same GET parameter would carry."""
    for key, value in param.items():
        if key == "valueReference" and isinstance(value, dict):
            return str(value.get("reference") or "")
        if key.startswith("value") and isinstance(value, str | bool | int):
            return str(value).lower() if isinstance(value, bool) else str(value)
    raise BadRequest(
        f"parameter '{param.get('name')}' has no value",
        expression=f"Parameters.parameter.{param.get('name')}",
    )


async def _parameters(request: Request, limit: int) -> _PARAMS:
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    if request.method != "POST":
        return pairs
    body = await read_body(request, limit)
    if not body.strip():
        return pairs
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}", expression="Parameters") from exc
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        raise BadRequest("a POST $export takes a Parameters resource", expression="Parameters")
    for param in resource.get("parameter") or []:
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            raise BadRequest("each parameter needs a name", expression="Parameters.parameter")
        pairs.append((param["name"], _value(param)))
    return pairs


def _listed(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _types(call: OperationCall, asked: list[str], lenience: _Lenience, research: bool) -> list[str]:
    """The types to export: those asked (or all) that the level and the caller's access allow."""
    access = call.access
    compartment_only = call.rtype is not None

    def fits_level(t: str) -> bool:
        return not compartment_only or in_compartment(t) or t in DOCUMENT_TYPES

    def readable(t: str) -> bool:
        return access.allows(t, READ) and access.history_filter([t], skip_narrowed=True) is not DENY

    if not asked:
        out = [t for t in sorted(SERVED_TYPES) if fits_level(t) and readable(t)]
        return [t for t in out if not (research and t in EXCLUDED_TYPES)]
    out = []
    for t in dict.fromkeys(asked):
        if not is_served(t):
            lenience.refuse(f"_type {t} is not a resource type this server exports", "_type")
        elif not fits_level(t):
            lenience.refuse(f"_type {t} is not in the Patient compartment", "_type")
        elif research and t in EXCLUDED_TYPES:
            lenience.notes.append(f"{t} is not exported to research clients")
        elif not readable(t):
            raise Forbidden(f"the access token does not allow reading {t}", expression="_type")
        else:
            out.append(t)
    return out


def _type_filters(values: list[str], types: list[str], lenience: _Lenience) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for raw in values:
        rtype, sep, query = raw.partition("?")
        if not sep or not query:
            raise BadRequest(f"_typeFilter '{raw}' is not of the form Type?query", expression="_typeFilter")
        if rtype not in types:
            lenience.refuse(f"_typeFilter '{raw}' names a type that is not exported", "_typeFilter")
            continue
        pairs = parse_qsl(query, keep_blank_values=True)
        try:
            parse_search(rtype, pairs, default_count=1, max_count=1, strict=True)
        except BadRequest as exc:
            raise BadRequest(f"_typeFilter '{raw}': {exc}", expression="_typeFilter") from exc
        if any(
            k.startswith("_") and k not in {"_id", "_lastUpdated", "_tag", "_security", "_profile"}
            for k, _ in pairs
        ):
            raise BadRequest(f"_typeFilter '{raw}' may hold search parameters only", expression="_typeFilter")
        filters.setdefault(rtype, []).append(query)
    return filters


def _elements(values: list[str]) -> list[str]:
    out = _listed(values)
    for e in out:
        m = _ELEMENT.match(e)
        if not m or (m.group(1) and not is_served(m.group(1)[:-1])):
            raise BadRequest(
                f"_elements '{e}' is not an element name or Type.element", expression="_elements"
            )
    return out


async def _visible(call: OperationCall, rtype: str, ids: list[str]) -> set[str]:
    """Which of these live resources the caller may read."""
    access: Access = call.access
    restrict = access.require(rtype, READ)
    query: dict[str, Any] = {"_id": {"$in": ids}}
    if restrict:
        query = {"$and": [query, restrict]}
    return {r.id for r in await call.services.repo.find(rtype, query, len(ids) + 1)}


async def _group_members(call: OperationCall, gid: str) -> list[str]:
    if not await _visible(call, "Group", [gid]):
        raise NotFound(f"Group/{gid} is not known", expression="Group")
    record = await call.services.repo.current("Group", gid)
    assert record is not None and record.resource is not None
    members = []
    for m in record.resource.get("member") or []:
        ref = ((m or {}).get("entity") or {}).get("reference")
        if not m.get("inactive") and isinstance(ref, str) and ref.startswith("Patient/"):
            members.append(ref.split("/")[1])
    return sorted(set(members))


async def _patients(call: OperationCall, values: list[str], lenience: _Lenience) -> list[str] | None:
    """The compartments the export is confined to: the ``patient`` parameter, a Group's members."""
    asked: list[str] | None = None
    if values:
        if call.request.method != "POST":
            lenience.refuse("the patient parameter is accepted in a POST Parameters body only", "patient")
        elif call.rtype is None:
            lenience.refuse("the patient parameter applies to Patient and Group exports only", "patient")
        else:
            asked = []
            for ref in values:
                if not ref.startswith("Patient/") or ref.count("/") != 1:
                    raise BadRequest(f"patient '{ref}' is not a Patient/[id] reference", expression="patient")
                asked.append(ref.split("/")[1])
            missing = sorted(set(asked) - await _visible(call, "Patient", asked))
            if missing:
                raise NotFound(f"Patient/{missing[0]} is not known", expression="patient")
    if call.rtype == "Group" and call.rid is not None:
        members = await _group_members(call, call.rid)
        return sorted(set(members) & set(asked)) if asked is not None else members
    return sorted(set(asked)) if asked is not None else None


async def kick_off(call: OperationCall) -> Response:
    """Queue an export and answer 202 with its status URL."""
    request = call.request
    settings = call.services.settings
    lenience = _Lenience(request)
    _check_headers(request, lenience)
    values: dict[str, list[str]] = {}
    for name, value in await _parameters(request, settings.max_body_bytes):
        values.setdefault(name, []).append(value)
    for name in values:
        if name == "includeAssociatedData":
            lenience.refuse("includeAssociatedData is not supported", name)
        elif name not in _SUPPORTED:
            lenience.refuse(f"parameter '{name}' is not supported by $export", name)
    for fmt in values.get("_outputFormat", []):
        if fmt not in OUTPUT_FORMATS:
            raise BadRequest(
                f"_outputFormat '{fmt}' is not supported; use application/fhir+ndjson",
                expression="_outputFormat",
            )
    since = date_range(values["_since"][-1], "_since")[0] if "_since" in values else None
    until = date_range(values["_until"][-1], "_until")[0] if "_until" in values else None
    access = call.access
    research = access.policy is not None and access.policy.kind == "research"
    types = _types(call, _listed(values.get("_type", [])), lenience, research)
    spec = ExportSpec(
        level="system" if call.rtype is None else call.rtype.lower(),
        types=types,
        group=call.rid,
        since=since,
        until=until,
        filters=_type_filters(values.get("_typeFilter", []), types, lenience),
        elements=_elements(values.get("_elements", [])),
        patients=await _patients(call, values.get("patient", []), lenience),
        research=research,
    )
    jobs: Jobs = request.app.state.export_jobs
    job_id = await jobs.create(
        owner_of(access.claims),
        access.claims,
        access.unrestricted,
        str(request.url),
        spec,
        now_ms(),
        settings.export_max_jobs_per_client,
        lenience.notes,
    )
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "information", "code": "informational", "diagnostics": f"export {job_id} queued"}
        ],
    }
    return json_response(
        request, outcome, 202, headers={"Content-Location": f"{settings.fhir_base}/bulk/status/{job_id}"}
    )


OPERATION = Operation(
    name="export",
    handler=kick_off,
    definition="http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    system=True,
    types=("Patient",),
    instances=("Group",),
    documentation="Bulk Data Access 2.0 export (asynchronous): NDJSON files, one per type; see README",
)
