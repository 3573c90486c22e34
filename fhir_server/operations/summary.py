"""``Patient/[id]/$summary`` and ``Patient/$summary?identifier=system|value`` (IPS): the patient summary
as a ``document`` Bundle, or as a printable HTML page with ``_format=html`` / ``Accept: text/html``.

This module reads what the caller may see (allergies, medication statements, recent reimbursements, the
latest document of each type of ``FHIR_SUMMARY_DOCUMENT_TYPES``, the practitioners they cite) through
the caller's access, and :mod:`fhir_server.dmp.summary` composes it.
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response

from fhir_server.api.http import json_response, wants_html
from fhir_server.dmp.exam_families import load_exam_families
from fhir_server.dmp.narrative import summary_page
from fhir_server.dmp.summary import SummaryData, compose_summary
from fhir_server.dmp.systems import LOINC
from fhir_server.fhir.dates import instant, now_ms
from fhir_server.fhir.errors import BadRequest
from fhir_server.operations._patient import (
    Json,
    months_ago,
    open_patient,
    operation_params,
    patient_by_identifier,
    patient_operation,
    references,
    resolve,
    search_compartment,
)
from fhir_server.operations.registry import OperationCall
from fhir_server.storage.repository import Record

DEFINITION = "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"
_KNOWN = {"_format", "_pretty"}
# The page is generated from escaped data only; the policy also forbids scripts and remote content.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def _resources(records: list[Record]) -> list[Json]:
    return [r.resource for r in records if r.resource is not None]


async def summary(call: OperationCall) -> Response:
    """Answer ``GET`` (or ``POST``) ``Patient/[id]/$summary``."""
    html = wants_html(call.request)
    known = _KNOWN if call.rid is not None else {*_KNOWN, "identifier"}
    params = await operation_params(call)
    unsupported = sorted(k for k in params if k not in known)
    if unsupported:
        raise BadRequest(
            f"$summary does not support {', '.join(unsupported)}",
            code="not-supported",
            expression=unsupported[0],
        )
    if call.rid is None:
        call = await patient_by_identifier(call, "summary", params)
    patient = await open_patient(call)
    settings = call.services.settings
    medication_since = months_ago(settings.summary_medication_months).isoformat()
    act_since = months_ago(settings.summary_act_months).isoformat()
    types = [t.strip() for t in settings.summary_document_types.split(",") if t.strip()]
    latest = [("status", "current"), ("_sort", "-date")]
    allergies, statements, claims, *documents = await asyncio.gather(
        search_compartment(call, "AllergyIntolerance", []),
        search_compartment(call, "MedicationStatement", [("status", "active,intended,on-hold")]),
        search_compartment(
            call, "ExplanationOfBenefit", [("care-date", f"ge{min(medication_since, act_since)}")]
        ),
        *(
            search_compartment(call, "DocumentReference", [("type", f"{LOINC}|{t}"), *latest], 1)
            for t in types
        ),
    )
    docs = [d for found in documents for d in _resources(found)]
    cited = [patient, *_resources(statements), *_resources(claims), *docs, *_resources(allergies)]
    referenced = await resolve(call, [ref for res in cited for ref in references(res)])
    data = SummaryData(
        patient=patient,
        allergies=_resources(allergies),
        statements=_resources(statements),
        claims=_resources(claims),
        documents=docs,
        referenced={ref: rec.resource for ref, rec in referenced.items() if rec.resource is not None},
        medication_since=medication_since,
        act_since=act_since,
        base=call.services.base,
        timestamp=instant(now_ms()),
        families=load_exam_families(settings.terminology_dir),
    )
    bundle = compose_summary(data)
    if html:
        return Response(summary_page(bundle), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)
    return json_response(call.request, bundle)


OPERATION = patient_operation(
    "summary",
    summary,
    DEFINITION,
    "The patient summary (IPS-shaped document Bundle, French narratives) of what the caller may see; "
    "_format=html or Accept: text/html for a printable page; Patient/$summary?identifier=system|value "
    "finds the patient by identifier (INS).",
    type_level=True,
)
