"""Builders for the DMP policy tests: patients, professionals, consents, documents and their tokens."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from fhir_server.auth.labels import VISIBILITY_SYSTEM
from tests.conftest import bearer, patient

PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
CLASS = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# The DMP document types (DOMAIN.md) with the class each belongs to (ours, as docs/access-rules.md says).
TYPE_CLASS = {
    "11488-4": "10",
    "11490-0": "10",
    "11502-2": "10",
    "11505-5": "10",
    "11506-3": "10",
    "11526-1": "10",
    "18748-4": "31",
    "15507-7": "10",
    "15508-5": "10",
    "18761-7": "10",
    "18776-5": "44",
    "11369-6": "11",
    "29274-8": "10",
    "60591-5": "11",
    "57833-6": "42",
    "60593-1": "43",
    "34874-8": "10",
}


async def create(client: httpx.AsyncClient, resource: dict[str, Any]) -> str:
    r = await client.post(resource["resourceType"], json=resource)
    assert r.status_code == 201, r.text
    rid: str = r.json()["id"]
    return rid


async def new_patient(client: httpx.AsyncClient, family: str, attending: str | None = None) -> str:
    extra = {"generalPractitioner": [{"reference": f"Practitioner/{attending}"}]} if attending else {}
    return await create(client, patient(family, **extra))


async def new_practitioner(client: httpx.AsyncClient, profession: str, specialty: str | None = None) -> str:
    quals = [{"code": {"coding": [{"system": PROFESSION, "code": profession}]}}]
    if specialty:
        quals.append({"code": {"coding": [{"system": "urn:test:specialty", "code": specialty}]}})
    return await create(client, {"resourceType": "Practitioner", "qualification": quals})


def consent(
    pid: str, actor: str | None, effect: str = "permit", purpose: str | None = None
) -> dict[str, Any]:
    """A DMP Consent as docs/access-rules.md defines them."""
    provision: dict[str, Any] = {"type": effect}
    if actor:
        provision["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "PRCP",
                        }
                    ]
                },
                "reference": {"reference": f"Practitioner/{actor}"},
            }
        ]
    if purpose:
        provision["purpose"] = [{"system": ACT_REASON, "code": purpose}]
    rule = "OPTIN" if effect == "permit" else "OPTOUT"
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "policyRule": {"coding": [{"system": ACT_CODE, "code": rule}]},
        "provision": provision,
    }


def document(
    pid: str, type_code: str, author: str | None = None, labels: tuple[str, ...] = ()
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": type_code}]},
        "category": [{"coding": [{"system": CLASS, "code": TYPE_CLASS[type_code]}]}],
        "subject": {"reference": f"Patient/{pid}"},
        "content": [{"attachment": {"contentType": "application/pdf", "url": "http://example.org/doc.pdf"}}],
    }
    if author:
        doc["author"] = [{"reference": author}]
    if labels:
        doc["meta"] = {"security": [{"system": VISIBILITY_SYSTEM, "code": c} for c in labels]}
    return doc


async def professional(
    app: FastAPI,
    practitioner: str,
    profession: str,
    specialty: str | None = None,
    mode: str | None = None,
    reason: str | None = None,
    scope: str = "user/*.cruds",
) -> dict[str, str]:
    """Headers of a professional's request: their token, and the access mode when not normal."""
    claims: dict[str, Any] = {
        "role": "practitioner",
        "fhirUser": f"Practitioner/{practitioner}",
        "profession": profession,
    }
    if specialty:
        claims["specialty"] = specialty
    headers = await bearer(app, scope, **claims)
    if mode:
        headers["X-DMP-Access-Mode"] = mode
    if reason:
        headers["X-DMP-Access-Reason"] = reason
    return headers


async def patient_user(app: FastAPI, pid: str, role: str = "patient") -> dict[str, str]:
    return await bearer(
        app,
        "patient/*.cruds",
        role=role,
        patient=pid,
        fhirUser=f"Patient/{pid}" if role == "patient" else None,
    )


def ids(bundle: dict[str, Any], rtype: str | None = None) -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if rtype is None or e["resource"]["resourceType"] == rtype
    }
