"""Conformance resources served read-only from files, and the terminology operations
(fhir_server/api/conformance_routes.py, fhir_server/operations/{lookup,expand,validate_code}.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.profiles.examples import EXAMPLES, SD

CLASSES = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
TYPES = "https://mos.esante.gouv.fr/NOS/JDV_J66-TypeCode-DMP/FHIR/JDV-J66-TypeCode-DMP"
CHANNELS = "https://dmp-fhir.org/CodeSystem/dmp-creation-channel?vs"
ITEMS = "https://dmp-fhir.org/ValueSet/dmp-reimbursed-item"


def _out(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in r.json()["parameter"]}


async def test_profiles_are_served_and_found_by_url(client: httpx.AsyncClient) -> None:
    sd = (await client.get("StructureDefinition/dmp-patient")).json()
    assert sd["url"] == SD + "dmp-patient"
    assert sd["snapshot"]["element"][0]["id"] == "Patient"
    found = (await client.get("StructureDefinition", params={"url": SD + "dmp-documentreference"})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["dmp-documentreference"]
    every = (await client.get("StructureDefinition")).json()
    assert every["total"] == len(list(EXAMPLES.parent.glob("StructureDefinition-*.json")))
    assert (await client.get("StructureDefinition/Patient")).status_code == 404


async def test_capability_statement_lists_the_dmp_profiles(client: httpx.AsyncClient) -> None:
    statement = (await client.get("metadata")).json()
    profiles = {r["type"]: r.get("supportedProfile") for r in statement["rest"][0]["resource"]}
    assert profiles["Patient"] == [SD + "dmp-patient"]
    assert profiles["ExplanationOfBenefit"] == [SD + "dmp-explanationofbenefit"]
    assert profiles["Binary"] is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "StructureDefinition"),
        ("PUT", "StructureDefinition/dmp-patient"),
        ("DELETE", "CodeSystem/TRE-A03-ClasseDocument"),
        ("PATCH", "ValueSet/dmp-visibility"),
    ],
)
async def test_conformance_resources_are_read_only(client: httpx.AsyncClient, method: str, path: str) -> None:
    r = await client.request(method, path, json={"resourceType": path.split("/")[0]})
    assert r.status_code == 405
    assert r.headers["allow"] == "GET"


async def test_code_systems_and_value_sets_are_searchable(client: httpx.AsyncClient) -> None:
    found = (await client.get("CodeSystem", params={"url": CLASSES})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["TRE-A03-ClasseDocument"]
    assert (await client.get("ValueSet/JDV-J66-TypeCode-DMP")).json()["url"] == TYPES
    none = (await client.get("ValueSet", params={"url": "http://example.org/none"})).json()
    assert none["total"] == 0


async def test_lookup_gives_the_display(client: httpx.AsyncClient) -> None:
    out = _out(await client.get("CodeSystem/$lookup", params={"system": CLASSES, "code": "31"}))
    assert out["display"] == "Imagerie médicale"
    assert out["version"] == "1.0.0"
    coding = {
        "resourceType": "Parameters",
        "parameter": [{"name": "coding", "valueCoding": {"system": CLASSES, "code": "60"}}],
    }
    assert _out(await client.post("CodeSystem/$lookup", json=coding))["display"] == "Données de remboursement"
    missing = await client.get("CodeSystem/$lookup", params={"system": CLASSES, "code": "77"})
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["expression"] == ["code"]
    assert (await client.get("CodeSystem/$lookup", params={"code": "77"})).status_code == 400


async def test_expand_with_filter_and_paging(client: httpx.AsyncClient) -> None:
    full = (await client.get("ValueSet/$expand", params={"url": TYPES})).json()
    assert full["expansion"]["total"] == 17
    found = (await client.get("ValueSet/$expand", params={"url": TYPES, "filter": "IMAGERIE"})).json()
    assert [c["code"] for c in found["expansion"]["contains"]] == ["18748-4"]
    page = (
        await client.get("ValueSet/dmp-creation-channel/$expand", params={"offset": 1, "count": 2})
    ).json()
    assert page["expansion"]["total"] == 5
    assert [c["code"] for c in page["expansion"]["contains"]] == ["pharmacie", "cpam"]
    assert (await client.get("ValueSet/$expand", params={"url": TYPES, "count": "x"})).status_code == 400


async def test_a_value_set_of_codes_not_held_cannot_be_expanded(client: httpx.AsyncClient) -> None:
    r = await client.get("ValueSet/$expand", params={"url": ITEMS})
    assert r.status_code == 422
    assert "CCAM" in r.text or "ccam" in r.text
    assert (await client.get("ValueSet/$expand", params={"url": "http://example.org/vs"})).status_code == 404


async def test_validate_code(client: httpx.AsyncClient) -> None:
    ok = _out(
        await client.get(
            "ValueSet/$validate-code",
            params={
                "url": CHANNELS,
                "system": "https://dmp-fhir.org/CodeSystem/dmp-creation-channel",
                "code": "cpam",
            },
        )
    )
    assert ok["result"] is True
    assert ok["display"] == "Un accueil de CPAM"
    no = _out(
        await client.get(
            "ValueSet/$validate-code", params={"url": TYPES, "system": "http://loinc.org", "code": "34108-1"}
        )
    )
    assert no["result"] is False
    assert "34108-1" in no["message"]
    wrong_display = _out(
        await client.get(
            "ValueSet/$validate-code",
            params={"url": TYPES, "system": "http://loinc.org", "code": "18748-4", "display": "X-ray"},
        )
    )
    assert wrong_display["result"] is False
    concept = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": ITEMS},
            {
                "name": "codeableConcept",
                "valueCodeableConcept": {
                    "coding": [
                        {"system": "http://example.org", "code": "x"},
                        {"system": "https://smt.esante.gouv.fr/terminologie-ccam", "code": "ZBQK002"},
                    ]
                },
            },
        ],
    }
    ccam = _out(await client.post("ValueSet/$validate-code", json=concept))
    assert ccam["result"] is True
    assert "only the system" in ccam["message"]


async def test_validate_code_knows_the_r4_value_sets(client: httpx.AsyncClient) -> None:
    gender = "http://hl7.org/fhir/ValueSet/administrative-gender"
    assert (
        _out(await client.get("ValueSet/$validate-code", params={"url": gender, "code": "female"}))["result"]
        is True
    )
    assert (
        _out(await client.get("ValueSet/$validate-code", params={"url": gender, "code": "f"}))["result"]
        is False
    )


async def test_expand_and_validate_code_take_an_inline_value_set(client: httpx.AsyncClient) -> None:
    inline = {
        "resourceType": "ValueSet",
        "url": "http://example.org/ValueSet/imaging-classes",
        "status": "draft",
        "compose": {
            "include": [{"system": CLASSES, "concept": [{"code": "31", "display": "Imagerie médicale"}]}]
        },
    }
    body = {"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": inline}]}
    expanded = (await client.post("ValueSet/$expand", json=body)).json()
    assert [c["code"] for c in expanded["expansion"]["contains"]] == ["31"]
    body["parameter"].append({"name": "coding", "valueCoding": {"system": CLASSES, "code": "10"}})
    assert _out(await client.post("ValueSet/$validate-code", json=body))["result"] is False
    by_id = await client.get(
        "ValueSet/JDV-J57-ClassCode-DMP/$validate-code", params={"system": CLASSES, "code": "10"}
    )
    assert _out(by_id) == {"result": True, "display": "Compte rendu"}


async def _traces(client: httpx.AsyncClient, interaction: str) -> int:
    """How many AuditEvents record that interaction (this search is traced as a search)."""
    params = {"subtype": interaction, "_total": "accurate", "_count": 0}
    return int((await client.get("AuditEvent", params=params)).json()["total"])


async def test_terminology_operations_and_validate_are_not_traced_but_reads_are(
    client: httpx.AsyncClient,
) -> None:
    operations = await _traces(client, "operation")
    await client.get("CodeSystem/$lookup", params={"system": CLASSES, "code": "31"})
    await client.get("ValueSet/$expand", params={"url": TYPES})
    await client.post("Patient/$validate", json={"resourceType": "Patient"})
    pid = (await client.post("Patient", json={"resourceType": "Patient"})).json()["id"]
    reads = await _traces(client, "read")
    await client.get(f"Patient/{pid}/$validate")
    assert await _traces(client, "operation") == operations
    assert await _traces(client, "read") == reads + 1  # the read of the stored resource is traced
