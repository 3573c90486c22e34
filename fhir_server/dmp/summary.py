"""The patient summary: a FHIR ``document`` Bundle shaped after the International Patient Summary, from
what the caller may see of a DMP (``Patient/[id]/$summary``).

Sections: allergies and intolerances (IPS 48765-2), current medications (IPS 10160-0: the
MedicationStatements, and what the recent pharmacy reimbursements show), recent acts from the
reimbursement history (IPS history of procedures 47519-4, one sub-section per kind of the exam-family
CodeSystem, latest first), the latest document of each important type (links, not bodies) and the
attending doctor. Each section has a French narrative generated from its entries (fhir_server.dmp.narrative);
an empty section says "no information available" whatever the reason, so a hidden resource leaves no trace.
This module is pure: the operation (fhir_server.operations.summary) reads the data within the caller's
access and hands it over.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fhir_server.auth.labels import local_reference
from fhir_server.dmp import systems
from fhir_server.dmp.claim_items import item_codings, item_date, item_label, item_performer
from fhir_server.dmp.exam_families import ExamFamilies
from fhir_server.dmp.narrative import (
    Html,
    concept_text,
    div,
    esc,
    fr_date,
    link,
    name_of,
    para,
    patient_line,
    table,
)

Json = dict[str, Any]
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_NOT_ALLERGIES = {"entered-in-error", "refuted"}
_CRITICALITY = {"low": "faible", "high": "élevée", "unable-to-assess": "non évaluable"}
_CLINICAL = {"active": "active", "inactive": "inactive", "resolved": "résolue"}
_INS_SYSTEMS = (
    systems.INS_NIR,
    systems.INS_NIA,
    "urn:oid:1.2.250.1.213.1.4.10",
    "urn:oid:1.2.250.1.213.1.4.11",
)
# Rows of one kind of act shown in the narrative (the rest is counted, not listed).
MAX_ACTS_PER_KIND = 20
# French labels of the DMP document types (DOMAIN.md, JDV_J66).
DOCUMENT_TYPE_LABELS = {
    "11488-4": "Compte rendu de consultation",
    "11490-0": "Lettre de liaison à la sortie",
    "11502-2": "Compte rendu d'examens biologiques",
    "11505-5": "Compte rendu d'acte thérapeutique",
    "11506-3": "Compte rendu de suivi de soins par auxiliaire médical",
    "11526-1": "Compte rendu d'anatomie et de cytologie pathologiques",
    "18748-4": "Compte rendu d'imagerie médicale",
    "15507-7": "Compte rendu de passage aux urgences",
    "15508-5": "Compte rendu d'accouchement",
    "18761-7": "Note de transfert",
    "18776-5": "Plan personnalisé de soins",
    "11369-6": "Historique des vaccinations",
    "29274-8": "Mesures de signes vitaux",
    "60591-5": "Volet de synthèse médicale",
    "57833-6": "Prescription",
    "60593-1": "Dispensation",
    "34874-8": "Compte rendu opératoire",
}


@dataclass
class SummaryData:
    """What the caller may see of one patient, as the summary needs it."""

    patient: Json
    allergies: list[Json]
    statements: list[Json]
    # ExplanationOfBenefits with care dates since the older of the two windows.
    claims: list[Json]
    # The latest document of each wanted type, in the order of the types.
    documents: list[Json]
    # Practitioners, organizations and medications the above refer to, by ``Type/id``.
    referenced: dict[str, Json]
    medication_since: str
    act_since: str
    base: str
    timestamp: str
    families: ExamFamilies
    # What the sections cite, by ``Type/id``, in order: the Bundle carries them.
    bundle_resources: dict[str, Json] = field(default_factory=dict)


def _code(system: str, code: str, display: str) -> Json:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _ref(data: SummaryData, resource: Json) -> Json:
    return {"reference": f"{data.base}/{resource['resourceType']}/{resource['id']}"}


def _section(title: str, code: Json, rows: Html | None, entries: list[Json], data: SummaryData) -> Json:
    section: Json = {"title": title, "code": code}
    if rows is None:
        section["text"] = {"status": "generated", "div": div(para(esc("Aucune information disponible.")))}
        section["emptyReason"] = {
            "coding": [{"system": EMPTY_REASON, "code": "unavailable", "display": "Unavailable"}],
            "text": "Aucune information disponible",
        }
        return section
    section["text"] = {"status": "generated", "div": div(rows)}
    section["entry"] = [_ref(data, r) for r in entries]
    for resource in entries:
        data.bundle_resources.setdefault(f"{resource['resourceType']}/{resource['id']}", resource)
    return section


def _who(data: SummaryData, ref: str | None) -> str:
    return name_of(data.referenced.get(ref or "")) or "—"


# -- sections --------------------------------------------------------------------------------------


def _allergies(data: SummaryData) -> Json:
    kept = [
        a
        for a in data.allergies
        if not {c.get("code") for c in (a.get("verificationStatus") or {}).get("coding") or []}
        & _NOT_ALLERGIES
    ]
    kept.sort(key=lambda a: str(a.get("recordedDate") or a.get("onsetDateTime") or ""), reverse=True)
    rows = [
        [
            esc(concept_text(a.get("code")) or "allergène non précisé"),
            esc(
                ", ".join(
                    t
                    for r in a.get("reaction") or []
                    for m in r.get("manifestation") or []
                    if (t := concept_text(m))
                )
            ),
            esc(_CRITICALITY.get(a.get("criticality", ""), "—")),
            esc(
                _CLINICAL.get(
                    next((c.get("code") for c in (a.get("clinicalStatus") or {}).get("coding") or []), ""),
                    "—",
                )
            ),
            esc(fr_date(a.get("recordedDate") or a.get("onsetDateTime"))),
        ]
        for a in kept
    ]
    html = table(["Allergène", "Réaction", "Criticité", "Statut", "Enregistrée le"], rows) if rows else None
    code = _code(systems.LOINC, "48765-2", "Allergies and adverse reactions Document")
    return _section("Allergies et intolérances", code, html, kept, data)


def _medication_name(data: SummaryData, statement: Json) -> str:
    concept = statement.get("medicationCodeableConcept")
    if concept:
        return concept_text(concept) or "médicament"
    ref = local_reference((statement.get("medicationReference") or {}).get("reference"))
    medication = data.referenced.get(ref or "")
    return (
        concept_text((medication or {}).get("code"))
        or statement.get("medicationReference", {}).get("display")
        or "médicament"
    )


def _dispensed(data: SummaryData) -> dict[str, tuple[str, int, str, Json]]:
    """Per CIP13/UCD code reimbursed since the medication window: (last date, count, label, latest claim)."""
    out: dict[str, tuple[str, int, str, Json]] = {}
    for claim in data.claims:
        for item in claim.get("item") or []:
            when = item_date(item)
            if when is None or when < data.medication_since:
                continue
            for system, code in item_codings(item):
                if system != systems.CIP_UCD:
                    continue
                last, count, label, latest = out.get(code, ("", 0, item_label(item), claim))
                out[code] = (max(last, when), count + 1, label, claim if when >= last else latest)
    return out


def _medications(data: SummaryData) -> Json:
    dispensed = _dispensed(data)
    rows: list[list[Html]] = []
    entries: list[Json] = []
    for st in sorted(data.statements, key=lambda s: _medication_name(data, s).lower()):
        codes = [c.get("code") for c in (st.get("medicationCodeableConcept") or {}).get("coding") or []]
        seen = next((dispensed.pop(c) for c in codes if c in dispensed), None)
        delivered = f"le {fr_date(seen[0])} ({seen[1]} délivrance(s))" if seen else "—"
        dosage = "; ".join(str(d["text"]) for d in st.get("dosage") or [] if d.get("text")) or "—"
        rows.append([esc(_medication_name(data, st)), esc(dosage), esc("Traitement déclaré"), esc(delivered)])
        entries.append(st)
    for last, count, label, claim in sorted(dispensed.values(), key=lambda v: v[0], reverse=True):
        rows.append(
            [
                esc(label),
                esc("—"),
                esc("Délivrance remboursée"),
                esc(f"le {fr_date(last)} ({count} délivrance(s))"),
            ]
        )
        if claim not in entries:
            entries.append(claim)
    html = None
    if rows:
        note = para(esc(f"Délivrances remboursées depuis le {fr_date(data.medication_since)}."))
        html = Html(
            table(["Médicament", "Posologie", "Source", "Dernière délivrance remboursée"], rows) + note
        )
    code = _code(systems.LOINC, "10160-0", "History of Medication use Narrative")
    return _section("Traitements en cours", code, html, entries, data)


def _acts_by_kind(data: SummaryData) -> dict[str, list[tuple[str, str, str, Json]]]:
    """Acts (not drugs) since the act window, per kind: (date, label, performer, claim), latest first."""
    by_kind: dict[str, list[tuple[str, str, str, Json]]] = {}
    for claim in data.claims:
        for item in claim.get("item") or []:
            when = item_date(item)
            codings = [c for c in item_codings(item) if c[0] != systems.CIP_UCD]
            if when is None or when < data.act_since or not codings:
                continue
            kind = next((k for s, c in codings if (k := data.families.kind(s, c))), "autres-actes")
            row = (when, item_label(item), _who(data, item_performer(claim, item)), claim)
            by_kind.setdefault(kind, []).append(row)
    for rows in by_kind.values():
        rows.sort(key=lambda r: (r[0], r[3].get("id", "")), reverse=True)
    return by_kind


def _acts(data: SummaryData) -> Json:
    by_kind = _acts_by_kind(data)
    kinds = [*data.families.kinds, ("autres-actes", "Autres actes")]
    subsections = []
    counts = []
    for kind, title in kinds:
        rows = by_kind.get(kind)
        if not rows:
            continue
        shown = rows[:MAX_ACTS_PER_KIND]
        html = table(
            ["Date", "Acte", "Réalisé par"],
            [[esc(fr_date(d)), esc(label), esc(who)] for d, label, who, _ in shown],
        )
        if len(rows) > len(shown):
            html = Html(html + para(esc(f"… et {len(rows) - len(shown)} acte(s) plus ancien(s).")))
        system = systems.SUMMARY_SECTION if kind == "autres-actes" else systems.EXAM_FAMILY
        claims = list({id(c): c for _, _, _, c in shown}.values())
        subsections.append(_section(title, _code(system, kind, title), html, claims, data))
        counts.append(f"{title.lower()} : {len(rows)}")
    code = _code(systems.LOINC, "47519-4", "History of Procedures Document")
    title = "Consultations et actes récents"
    if not subsections:
        return _section(title, code, None, [], data)
    text = para(
        esc(f"Actes remboursés depuis le {fr_date(data.act_since)}, du plus récent au plus ancien — "),
        esc("; ".join(counts) + "."),
    )
    return {
        "title": title,
        "code": code,
        "text": {"status": "generated", "div": div(text)},
        "section": subsections,
    }


def _attachment_link(data: SummaryData, doc: Json) -> Html:
    for content in doc.get("content") or []:
        url = (content.get("attachment") or {}).get("url")
        if isinstance(url, str) and url:
            absolute = url if "://" in url else f"{data.base}/{url.lstrip('/')}"
            return link(absolute, "ouvrir")
    return link(f"{data.base}/DocumentReference/{doc['id']}", "fiche")


def _document_type(doc: Json) -> str:
    codings = (doc.get("type") or {}).get("coding") or []
    code = next((c.get("code") for c in codings if c.get("system") == systems.LOINC), None)
    return DOCUMENT_TYPE_LABELS.get(code or "") or concept_text(doc.get("type")) or "Document"


def _without_bodies(doc: Json) -> Json:
    """The document with its attachments' inline data removed: the summary links, it does not carry."""
    contents = []
    for content in doc.get("content") or []:
        attachment = {k: v for k, v in (content.get("attachment") or {}).items() if k != "data"}
        contents.append({**content, "attachment": attachment})
    return {**doc, "content": contents} if contents else doc


def _documents(data: SummaryData) -> Json:
    docs = [_without_bodies(d) for d in data.documents]
    rows = [
        [
            esc(_document_type(d)),
            esc(fr_date(d.get("date"))),
            esc(
                ", ".join(_who(data, local_reference(a.get("reference"))) for a in d.get("author") or [])
                or "—"
            ),
            _attachment_link(data, d),
        ]
        for d in docs
    ]
    html = table(["Type", "Date", "Auteur", "Document"], rows) if rows else None
    code = _code(systems.SUMMARY_SECTION, "documents-recents", "Derniers documents par type")
    return _section("Derniers documents", code, html, docs, data)


def _attending(data: SummaryData) -> Json:
    found = [
        data.referenced[ref]
        for g in data.patient.get("generalPractitioner") or []
        if (ref := local_reference(g.get("reference"))) in data.referenced
    ]
    rows = []
    for who in found:
        rpps = next(
            (i.get("value") for i in who.get("identifier") or [] if i.get("system") == systems.RPPS), None
        )
        contact = ", ".join(str(t["value"]) for t in who.get("telecom") or [] if t.get("value"))
        city = ", ".join(str(a["city"]) for a in who.get("address") or [] if a.get("city"))
        rows.append([esc(name_of(who) or "—"), esc(rpps or "—"), esc(contact or "—"), esc(city or "—")])
    html = table(["Nom", "RPPS", "Contact", "Ville"], rows) if rows else None
    code = _code(systems.SUMMARY_SECTION, "medecin-traitant", "Médecin traitant")
    return _section("Médecin traitant", code, html, found, data)


def _ins(patient: Json) -> str | None:
    return next(
        (
            str(i["value"])
            for s in _INS_SYSTEMS
            for i in patient.get("identifier") or []
            if i.get("system") == s and i.get("value")
        ),
        None,
    )


def compose_summary(data: SummaryData) -> Json:
    """The summary ``document`` Bundle: Composition first, then the Patient and every resource a
    section refers to."""
    patient = data.patient
    sections = [_allergies(data), _medications(data), _acts(data), _documents(data), _attending(data)]
    name = name_of(patient) or "patient"
    composition: Json = {
        "resourceType": "Composition",
        "id": str(uuid.uuid4()),
        "language": "fr-FR",
        "text": {"status": "generated", "div": div(patient_line(patient, _ins(patient)))},
        "status": "final",
        "type": _code(systems.LOINC, "60591-5", "Patient summary Document"),
        "subject": _ref(data, patient),
        "date": data.timestamp,
        "author": [{"display": "dmp-fhir (synthèse générée automatiquement)"}],
        "title": f"Synthèse du dossier médical partagé de {name}",
        "confidentiality": "N",
        "section": sections,
    }
    entries = [{"fullUrl": f"urn:uuid:{composition['id']}", "resource": composition}]
    resources = {f"Patient/{patient['id']}": patient, **data.bundle_resources}
    cited = {r for res in data.bundle_resources.values() for r in _cited(res)} | _gp_refs(patient)
    for ref in sorted(cited):
        if ref in data.referenced:
            resources.setdefault(ref, data.referenced[ref])
    entries += [{"fullUrl": f"{data.base}/{ref}", "resource": r} for ref, r in resources.items()]
    bundle_id = str(uuid.uuid4())
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle_id}"},
        "type": "document",
        "timestamp": data.timestamp,
        "entry": entries,
    }


def _gp_refs(patient: Json) -> set[str]:
    return {r for g in patient.get("generalPractitioner") or [] if (r := local_reference(g.get("reference")))}


def _cited(resource: Json) -> set[str]:
    """The practitioners and organizations a bundled resource names as performer, author or source."""
    out = set()
    for key in ("provider", "informationSource", "recorder", "asserter", "medicationReference"):
        if ref := local_reference((resource.get(key) or {}).get("reference")):
            out.add(ref)
    for member in resource.get("careTeam") or []:
        if ref := local_reference((member.get("provider") or {}).get("reference")):
            out.add(ref)
    for author in resource.get("author") or []:
        if ref := local_reference(author.get("reference")):
            out.add(ref)
    return out
