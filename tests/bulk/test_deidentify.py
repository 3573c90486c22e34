"""The research export: pseudonyms, nothing that names or reaches a person, the PSEUDED label."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from fhir_server.bulk.deidentify import PSEUDONYM_SYSTEM, Pseudonymizer
from tests.bulk.conftest import client_for, create, export
from tests.conftest import bearer
from tests.dmp.ins import keyed

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
RPPS = "urn:oid:1.2.250.1.71.4.2.1"


def _nir(tag: str) -> str:
    """A valid INS-NIR of a woman born in April 1980, derived from ``tag`` (the same tag, the same NIR)."""
    return keyed(f"2800475{int(tag, 16) % 10**6:06d}")


def _person(tag: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": INS_NIR, "value": _nir(tag)}],
        "name": [{"family": f"Fam{tag}", "given": [f"Giv{tag}"]}],
        "telecom": [{"system": "phone", "value": f"06{tag[:8]}"}],
        "address": [
            {"line": [f"12 rue {tag}"], "city": f"City{tag}", "postalCode": "2A004", "country": "FR"}
        ],
        "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">Note {tag}</div>'},
        "gender": "female",
        "birthDate": "1980-04-12",
    }


async def _research_lines(
    app: FastAPI, headers: dict[str, str], types: str
) -> tuple[bytes, list[dict[str, Any]]]:
    async with client_for(app, headers) as lab:
        manifest = await export(app, lab, params={"_type": types})
        raw = b"".join([(await lab.get(o["url"])).content for o in manifest["output"]])
    return raw, [orjson.loads(line) for line in raw.splitlines() if line]


async def test_research_output_holds_no_original_identifier_name_or_id_and_keeps_links(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    tag = uuid.uuid4().hex[:10]
    doctor = await create(
        bulk,
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": RPPS, "value": f"1{tag}"}],
            "name": [{"family": f"Doc{tag}"}],
        },
    )
    person = await create(
        bulk,
        {
            **_person(tag),
            "generalPractitioner": [{"reference": f"Practitioner/{doctor['id']}", "display": f"Dr Doc{tag}"}],
        },
    )
    allergy = await create(
        bulk,
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{person['id']}", "display": f"Fam{tag}"},
            "note": [{"text": f"said by Fam{tag}"}],
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": "91936005"}],
                "text": f"Pénicilline {tag}",
            },
        },
    )
    research = await bearer(bulk_app, "system/*.rs", role="research", client_id="lab-a", sub="lab-a")
    raw, lines = await _research_lines(bulk_app, research, "Patient,Practitioner,AllergyIntolerance")
    originals = [tag, f"2800{tag[:6]}", person["id"], doctor["id"], allergy["id"], "12 rue", "2A004"]
    for value in originals:
        assert value.encode() not in raw, value
    assert lines and all(
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
            "code": "PSEUDED",
            "display": "pseudonymized",
        }
        in r["meta"]["security"]
        for r in lines
    )
    secret = await bulk_app.state.export_jobs.pseudonym_secret("")
    p = Pseudonymizer(secret, bulk_app.state.services.settings.fhir_base)
    mine = next(r for r in lines if r["id"] == p.resource_id("Patient", person["id"]))
    assert mine["birthDate"] == "1980"
    assert mine["address"] == [{"postalCode": "2A", "country": "FR"}]
    assert "name" not in mine and "telecom" not in mine and "text" not in mine
    assert mine["identifier"] == [{"system": PSEUDONYM_SYSTEM, "value": p.identifier(INS_NIR, _nir(tag))}]
    assert mine["generalPractitioner"] == [
        {"reference": f"Practitioner/{p.resource_id('Practitioner', doctor['id'])}"}
    ]
    a = next(r for r in lines if r["id"] == p.resource_id("AllergyIntolerance", allergy["id"]))
    assert a["patient"] == {"reference": f"Patient/{mine['id']}"}
    assert a["code"] == {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]}
    assert "note" not in a
    assert not any(r["resourceType"] == "Practitioner" and "name" in r for r in lines)


async def test_the_same_patient_gets_the_same_pseudonym_in_every_export(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    tag = uuid.uuid4().hex[:10]
    person = await create(bulk, _person(tag))
    research = await bearer(bulk_app, "system/*.rs", role="research", client_id="lab-b", sub="lab-b")
    _, first = await _research_lines(bulk_app, research, "Patient")
    _, second = await _research_lines(bulk_app, research, "Patient")
    secret = await bulk_app.state.export_jobs.pseudonym_secret("")
    pid = Pseudonymizer(secret).resource_id("Patient", person["id"])
    one = next(r for r in first if r["id"] == pid)
    two = next(r for r in second if r["id"] == pid)
    assert one["identifier"] == two["identifier"]
    assert {r["id"] for r in first} <= {r["id"] for r in second}


async def test_research_exports_no_binary_and_no_trace(bulk_app: FastAPI, bulk: httpx.AsyncClient) -> None:
    research = await bearer(bulk_app, "system/*.rs", role="research", client_id="lab-c", sub="lab-c")
    async with client_for(bulk_app, research) as lab:
        manifest = await export(bulk_app, lab)
    assert not {o["type"] for o in manifest["output"]} & {"Binary", "AuditEvent"}


def test_pseudonyms_depend_on_the_secret_and_rewrite_absolute_references_of_this_server() -> None:
    a, b = Pseudonymizer(b"one", "http://x/fhir"), Pseudonymizer(b"two", "http://x/fhir")
    assert a.resource_id("Patient", "1") != b.resource_id("Patient", "1")
    assert a.resource_id("Patient", "1") != a.resource_id("Practitioner", "1")
    assert a.reference("http://x/fhir/Patient/1") == f"Patient/{a.resource_id('Patient', '1')}"
    assert a.reference("Patient/1/_history/3") == f"Patient/{a.resource_id('Patient', '1')}"
    assert a.reference("urn:uuid:0d3c") is None and a.reference("#contained") is None
    out = a.transform(
        {"resourceType": "Patient", "id": "1", "address": [{"postalCode": "97411", "city": "Saint-Paul"}]}
    )
    assert out["address"] == [{"postalCode": "974"}]
