"""What the patient-level operations ($everything, $summary, $prior-exams) share: opening the patient's
record within the caller's access, searching its compartment and resolving the references it holds.

Every read goes through the caller's :class:`~fhir_server.auth.access.Access` (scopes ∩ DMP policy), so
what the policy hides (a masked document, a type the profession may not read) is simply not found.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from starlette.datastructures import QueryParams

from fhir_server.api.http import read_body
from fhir_server.auth.labels import local_reference
from fhir_server.auth.policy import DENY
from fhir_server.auth.scopes import READ, SEARCH
from fhir_server.fhir.codec import parse_json
from fhir_server.fhir.errors import BadRequest, Gone, NotFound
from fhir_server.fhir.rest import check_id
from fhir_server.operations.registry import Handler, Operation, OperationCall
from fhir_server.search.plan import choose_lead
from fhir_server.search.request import parse_search
from fhir_server.storage.repository import Record

Json = dict[str, Any]
# Shared reference data an operation resolves for display or includes (DESIGN.md: SHARED_TYPES).
REFERENCED_TYPES = ("Practitioner", "PractitionerRole", "Organization", "Medication")
# Most resources of one type an operation reads for one patient.
MAX_PER_TYPE = 1000


async def open_patient(call: OperationCall) -> Json:
    """The Patient the operation is invoked on: 404 when unknown, 410 when deleted, 403 when outside
    the caller's access (another patient's token, a professional without the patient's authorization)."""
    pid = call.rid
    assert pid is not None
    check_id(pid)
    rec = await call.services.repo.current("Patient", pid)
    if rec is None:
        raise NotFound(f"Patient/{pid} does not exist")
    await call.services.resources.bound(call.access).check("Patient", pid, READ)
    if rec.deleted or rec.resource is None:
        raise Gone(f"Patient/{pid} was deleted")
    return rec.resource


async def patient_by_identifier(call: OperationCall, name: str, params: QueryParams) -> OperationCall:
    """The call bound to the one Patient its ``identifier`` parameter (``system|value``) designates
    among those the caller may see: 400 without it or when several match, 404 when none. The access is
    traced against that patient, as an instance-level call would be."""
    identifier = params.get("identifier")
    if not identifier:
        raise BadRequest(
            f"Patient/${name} needs identifier=system|value (e.g. the INS)", expression="identifier"
        )
    found = await search_compartment_free(call, "Patient", [("identifier", identifier)], 2)
    if not found:
        raise NotFound(f"no patient with identifier {identifier} is within reach of this access")
    if len(found) > 1:
        raise BadRequest(
            f"identifier {identifier} designates several patients",
            code="multiple-matches",
            expression="identifier",
        )
    bound = dataclasses.replace(call, rid=found[0].id)
    if call.access.audit is not None:
        await call.access.audit.record(
            f"operation:${name}",
            [found[0].id],
            [f"Patient/{found[0].id}"],
        )
    return bound


# Value types a POSTed Parameters resource may carry for these operations' inputs.
_VALUE_KEYS = (
    "valueString",
    "valueCode",
    "valueUri",
    "valueDate",
    "valueDateTime",
    "valueInstant",
    "valueInteger",
)


async def operation_params(call: OperationCall) -> QueryParams:
    """The operation's input parameters: the query string, plus for POST the ``Parameters`` resource
    of the body (each parameter a name and one primitive ``value[x]``); 400 for anything else."""
    pairs = list(call.request.query_params.multi_items())
    if call.request.method != "POST":
        return QueryParams(pairs)
    body = parse_json(await read_body(call.request, call.services.settings.max_body_bytes))
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("the body of an operation must be a Parameters resource", expression="Parameters")
    for i, parameter in enumerate(body.get("parameter") or []):
        where = f"Parameters.parameter[{i}]"
        values = [parameter[k] for k in _VALUE_KEYS if k in parameter] if isinstance(parameter, dict) else []
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or len(values) != 1 or isinstance(values[0], dict | list | bool):
            raise BadRequest(
                f"{where} must have a name and one value ({', '.join(_VALUE_KEYS)})", expression=where
            )
        pairs.append((name, str(values[0])))
    return QueryParams(pairs)


def may_search(call: OperationCall, rtype: str) -> bool:
    """Whether anything of ``rtype`` may be searched by this caller (no query is run otherwise)."""
    return call.access.allows(rtype, SEARCH) and call.access.filter(rtype, SEARCH) is not DENY


async def search_compartment(
    call: OperationCall, rtype: str, params: Sequence[tuple[str, str]], limit: int = MAX_PER_TYPE
) -> list[Record]:
    """Resources of ``rtype`` in the patient's compartment matching search ``params``, within the
    caller's access (none when it may not search the type)."""
    return await _search(call, rtype, params, limit, call.rid)


async def search_compartment_free(
    call: OperationCall, rtype: str, params: Sequence[tuple[str, str]], limit: int
) -> list[Record]:
    """Like :func:`search_compartment`, over every compartment the caller may see."""
    return await _search(call, rtype, params, limit, None)


async def _search(
    call: OperationCall, rtype: str, params: Sequence[tuple[str, str]], limit: int, compartment: str | None
) -> list[Record]:
    if not may_search(call, rtype):
        return []
    req = parse_search(
        rtype, [*params, ("_total", "none")], default_count=limit, max_count=limit, strict=True
    )
    result = await call.services.engine.search(req, call.access.restrict, compartment=compartment)
    return result.matches


def references(resource: Any, types: Iterable[str] = REFERENCED_TYPES) -> list[str]:
    """The local ``Type/id`` references of ``resource`` (at any depth) to one of ``types``."""
    wanted = set(types)
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = local_reference(node.get("reference"))
            if ref is not None and ref.split("/", 1)[0] in wanted and ref not in found:
                found.append(ref)
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(resource)
    return found


async def resolve(call: OperationCall, refs: Iterable[str]) -> dict[str, Record]:
    """The resources behind ``Type/id`` references that the caller may read, by reference."""
    by_type: dict[str, list[str]] = {}
    for ref in refs:
        rtype, _, rid = ref.partition("/")
        if rid and rid not in by_type.setdefault(rtype, []):
            by_type[rtype].append(rid)
    found = await asyncio.gather(*(_fetch(call, rtype, ids) for rtype, ids in by_type.items()))
    return {f"{rec.rtype}/{rec.id}": rec for records in found for rec in records}


async def _fetch(call: OperationCall, rtype: str, ids: list[str]) -> list[Record]:
    if not call.access.allows(rtype, READ) or call.access.filter(rtype, READ) is DENY:
        return []
    restrict = call.access.restrict(rtype)
    filt: Json = {"$and": [{"_id": {"$in": ids}}, restrict]} if restrict else {"_id": {"$in": ids}}
    return await call.services.repo.find(rtype, filt, len(ids), lead=choose_lead(rtype, filt))


def months_ago(months: int, today: date | None = None) -> date:
    """The day ``months`` months before ``today`` (the last day of a shorter month)."""
    today = today or date.today()
    index = today.year * 12 + today.month - 1 - months
    year, month = divmod(index, 12)
    for day in (today.day, 30, 29, 28):
        try:
            return date(year, month + 1, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def positive_int(value: str | None, name: str, default: int, maximum: int) -> int:
    """A whole-number parameter in 1..maximum (400 naming it otherwise)."""
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise BadRequest(f"{name} must be a whole number from 1 to {maximum}, not '{value}'", expression=name)
    return int(value)


def entry(base: str, rec: Record, mode: str) -> Json:
    """A searchset entry for ``rec`` with its search mode (match, include)."""
    return {"fullUrl": f"{base}/{rec.rtype}/{rec.id}", "resource": rec.resource, "search": {"mode": mode}}


def patient_operation(
    name: str,
    handler: Handler,
    definition: str,
    documentation: str,
    resource: Json | None = None,
    type_level: bool = False,
) -> Operation:
    """An operation invoked with GET or POST on ``Patient/[id]`` (and on ``Patient`` when
    ``type_level``)."""
    return Operation(
        name=name,
        handler=handler,
        definition=definition,
        methods=("GET", "POST"),
        types=("Patient",) if type_level else (),
        instances=("Patient",),
        documentation=documentation,
        resource=resource,
    )
