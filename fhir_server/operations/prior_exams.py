"""``Patient/[id]/$prior-exams?code=system|code[&months=N]``: before ordering an act, the similar exams
the patient already had — reimbursed acts (ExplanationOfBenefit, and Claims no EOB settles yet) and the
reports among the documents — newest first, with their performers, within the caller's access.

"Similar" is data: the act's exam family in ``terminology/ConceptMap-exam-families.json`` (every act of
the family matches), and the family's report types (LOINC). A report matches when its
``context.event`` names an act of the family, or, naming no act, when it is of a report type of the
family and dated the same day as a matching act. An act the map does not place matches only itself.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from fhir_server.api.http import json_response, negotiate
from fhir_server.auth.labels import local_reference
from fhir_server.dmp import systems
from fhir_server.dmp.claim_items import item_codings, item_date
from fhir_server.dmp.exam_families import Coding, ExamFamilies, load_exam_families
from fhir_server.fhir.errors import BadRequest, Issue, operation_outcome
from fhir_server.operations._patient import (
    Json,
    entry,
    months_ago,
    open_patient,
    operation_params,
    patient_operation,
    positive_int,
    references,
    resolve,
    search_compartment,
)
from fhir_server.operations.registry import OperationCall
from fhir_server.storage.repository import Record

DEFINITION = "https://dmp-fhir.org/OperationDefinition/prior-exams"
_MAX_MONTHS = 240
_DEFINITION_FILE = "OperationDefinition-prior-exams.json"
_PERFORMER_TYPES = ("Practitioner", "PractitionerRole", "Organization")


def _code(value: str | None, families: ExamFamilies) -> Coding:
    if not value:
        raise BadRequest(
            "$prior-exams needs code=system|code (the act about to be ordered)", expression="code"
        )
    system, bar, code = value.partition("|")
    if not bar or not system or not code:
        raise BadRequest(
            f"code '{value}' must be system|code, e.g. {systems.CCAM}|ZBQK002", expression="code"
        )
    known = families.act_systems | {systems.CCAM, systems.NABM, systems.NGAP, systems.LPP}
    if system not in known:
        raise BadRequest(
            f"code system '{system}' is not an act nomenclature of the reimbursement history "
            f"({', '.join(sorted(known))})",
            expression="code",
        )
    return system, code


def _act_date(rec: Record, similar: set[Coding], since: str) -> str | None:
    dates = [
        d
        for item in (rec.resource or {}).get("item") or []
        if set(item_codings(item)) & similar and (d := item_date(item)) and d >= since
    ]
    return max(dates) if dates else None


def _events(doc: dict[str, Any]) -> set[Coding]:
    return {
        (c.get("system"), c.get("code"))
        for event in (doc.get("context") or {}).get("event") or []
        for c in event.get("coding") or []
    }


def _report_date(doc: dict[str, Any]) -> str | None:
    value = doc.get("date") or ((doc.get("context") or {}).get("period") or {}).get("start")
    return value if isinstance(value, str) else None


def _matching_reports(
    docs: list[Record], similar: set[Coding], act_days: set[str], act_systems: frozenset[str]
) -> list[tuple[str, Record]]:
    out = []
    for rec in docs:
        doc = rec.resource or {}
        when = _report_date(doc)
        events = _events(doc)
        named = {e for e in events if e[0] in act_systems}
        if events & similar or (not named and when is not None and when[:10] in act_days):
            out.append((when or "", rec))
    return out


def _outcome(families: ExamFamilies, coding: Coding, since: str, acts: int, reports: int) -> Json:
    system, code = coding
    family = families.family(system, code)
    if family is None:
        text = (
            f"{system}|{code} n'appartient à aucune famille d'examens connue : seuls les actes de ce code "
            f"depuis le {since} sont cherchés, sans comptes rendus"
        )
    else:
        kind = families.kind_of_family[family]
        text = (
            f"Examens de la famille « {families.display[family]} » ({families.display[kind]}) depuis le "
            f"{since} : {acts} acte(s) remboursé(s), {reports} compte(s) rendu(s)"
        )
    return operation_outcome([Issue("informational", text, severity="information")])


async def prior_exams(call: OperationCall) -> Response:
    """Answer ``GET`` (or ``POST``) ``Patient/[id]/$prior-exams``."""
    negotiate(call.request)
    await open_patient(call)
    settings = call.services.settings
    families = load_exam_families(settings.terminology_dir)
    query = await operation_params(call)
    coding = _code(query.get("code"), families)
    months = positive_int(query.get("months"), "months", settings.prior_exams_months, _MAX_MONTHS)
    since = months_ago(months).isoformat()
    similar = families.similar(*coding)
    criteria = [("act", ",".join(f"{s}|{c}" for s, c in similar)), ("care-date", f"ge{since}")]
    eobs = await search_compartment(call, "ExplanationOfBenefit", criteria)
    settled = {local_reference((e.resource or {}).get("claim", {}).get("reference")) for e in eobs}
    claims = [c for c in await search_compartment(call, "Claim", criteria) if f"Claim/{c.id}" not in settled]
    wanted = set(similar)
    acts = [(d, rec) for rec in [*eobs, *claims] if (d := _act_date(rec, wanted, since))]
    reports: list[tuple[str, Record]] = []
    types = families.report_types(*coding)
    if types:
        docs = await search_compartment(
            call,
            "DocumentReference",
            [
                ("type", ",".join(f"{systems.LOINC}|{t}" for t in types)),
                ("date", f"ge{since}"),
                ("status", "current"),
            ],
        )
        reports = _matching_reports(docs, wanted, {d for d, _ in acts}, families.act_systems)
    # Newest day first; on one day the act before the report it led to.
    found = sorted(
        [*acts, *reports],
        key=lambda pair: (pair[0][:10], pair[1].rtype != "DocumentReference", pair[1].id),
        reverse=True,
    )
    performers = [ref for _, rec in found for ref in references(rec.resource, _PERFORMER_TYPES)]
    resolved = await resolve(call, performers)
    base = call.services.base
    entries = [entry(base, r, "match") for _, r in found]
    entries += [entry(base, resolved[ref], "include") for ref in dict.fromkeys(performers) if ref in resolved]
    entries.append(
        {
            "resource": _outcome(families, coding, since, len(acts), len(reports)),
            "search": {"mode": "outcome"},
        }
    )
    url = f"{base}/Patient/{call.rid}/$prior-exams?" + urlencode(
        [("code", query["code"]), ("months", months)]
    )
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": url}],
        "entry": entries,
    }
    return json_response(call.request, bundle)


OPERATION = patient_operation(
    "prior-exams",
    prior_exams,
    DEFINITION,
    "Similar exams the patient already had (reimbursed acts and their reports, newest first), from the exam "
    "families of terminology/ConceptMap-exam-families.json.",
    json.loads(resources.files("fhir_server.definitions").joinpath(_DEFINITION_FILE).read_text("utf-8")),
)
