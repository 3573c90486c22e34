"""Search over HTTP: the grammar, chaining, _has, includes, sorting, paging, totals, strictness."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import patient

LOINC = "http://loinc.org"


async def _post(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(resource["resourceType"], json=resource)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _ids(client: httpx.AsyncClient, url: str, **headers: str) -> list[str]:
    r = await client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return [e["resource"]["id"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


@pytest.fixture(scope="module")
async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    """A small DMP: two patients, an organisation, a GP, documents, allergies, an EOB."""
    tag = uuid.uuid4().hex[:10]
    org = await _post(
        client,
        {
            "resourceType": "Organization",
            "name": f"CHU de Rennes {tag}",
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.2", "value": f"FIN{tag}"}],
        },
    )
    gp = await _post(
        client,
        {
            "resourceType": "Practitioner",
            "name": [{"family": "Dupont", "given": ["Anne"]}],
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": f"RPPS{tag}"}],
        },
    )
    p1 = await _post(
        client,
        patient(
            family=f"Lefèvre{tag}",
            birthDate="1980-04-12",
            managingOrganization={"reference": f"Organization/{org['id']}"},
            generalPractitioner=[{"reference": f"Practitioner/{gp['id']}"}],
            identifier=[{"system": "https://hopital.example.fr/ipp", "value": f"1{tag}"}],
        ),
    )
    p2 = await _post(client, patient(family=f"Lefebvre{tag}", birthDate="1975-11-02", gender="male"))
    docs = []
    for i, (code, when) in enumerate(
        [
            ("11488-4", "2024-03-15T10:00:00Z"),
            ("11502-2", "2024-06-01T08:30:00+02:00"),
            ("11488-4", "2025-01-20T14:00:00Z"),
        ]
    ):
        docs.append(
            await _post(
                client,
                {
                    "resourceType": "DocumentReference",
                    "status": "current",
                    "type": {"coding": [{"system": LOINC, "code": code}]},
                    "subject": {"reference": f"Patient/{p1['id']}"},
                    "date": when,
                    "author": [{"reference": f"Practitioner/{gp['id']}"}],
                    "description": f"Compte rendu {i} {tag}",
                    "content": [{"attachment": {"contentType": "application/pdf", "url": f"Binary/doc{i}"}}],
                },
            )
        )
    allergy = await _post(
        client,
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{p1['id']}"},
            "code": {"text": "Pénicilline"},
        },
    )
    eob = await _post(
        client,
        {
            "resourceType": "ExplanationOfBenefit",
            "status": "active",
            "use": "claim",
            "outcome": "complete",
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}
                ]
            },
            "patient": {"reference": f"Patient/{p1['id']}"},
            "created": "2024-05-02",
            "insurer": {"reference": f"Organization/{org['id']}"},
            "provider": {"reference": f"Organization/{org['id']}"},
            "insurance": [{"focal": True, "coverage": {"display": "AMO"}}],
        },
    )
    return {
        "tag": tag,
        "org": org,
        "gp": gp,
        "p1": p1,
        "p2": p2,
        "docs": docs,
        "allergy": allergy,
        "eob": eob,
    }


async def test_family_search_ignores_accents_and_case(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    tag = world["tag"]
    assert set(await _ids(client, f"Patient?family=lefe&_id={world['p1']['id']},{world['p2']['id']}")) == {
        world["p1"]["id"],
        world["p2"]["id"],
    }
    assert await _ids(client, f"Patient?family=LEFEVRE{tag}") == [world["p1"]["id"]]
    assert await _ids(client, f"Patient?family:exact=Lefèvre{tag}") == [world["p1"]["id"]]
    assert await _ids(client, f"Patient?family:exact=lefèvre{tag}") == []
    assert await _ids(client, f"Patient?name:contains=fèvre{tag}") == [world["p1"]["id"]]


async def test_date_prefixes_on_partial_dates(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    pid = world["p1"]["id"]
    d0, d1, d2 = (d["id"] for d in world["docs"])
    base = f"DocumentReference?subject=Patient/{pid}"
    assert set(await _ids(client, f"{base}&date=2024")) == {d0, d1}
    assert await _ids(client, f"{base}&date=2024-03") == [d0]
    assert set(await _ids(client, f"{base}&date=ge2024-06-01")) == {d1, d2}
    assert await _ids(client, f"{base}&date=lt2024-04") == [d0]
    assert set(await _ids(client, f"{base}&date=ge2024-01-01&date=lt2025-01-01")) == {d0, d1}
    assert await _ids(client, f"{base}&date=sa2024-12") == [d2]
    r = await client.get(f"{base}&date=2024-13")
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["date"]
    r = await client.get(f"{base}&date=xx2024")
    assert r.status_code == 400


async def test_patient_documents_by_type_and_date_range(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    pid = world["p1"]["id"]
    d0, _, d2 = (d["id"] for d in world["docs"])
    ids = await _ids(
        client, f"DocumentReference?patient={pid}&type={LOINC}|11488-4&date=ge2024-01-01&_sort=date"
    )
    assert ids == [d0, d2]
    ids = await _ids(client, f"DocumentReference?patient={pid}&type={LOINC}|11488-4&_sort=-date")
    assert ids == [d2, d0]


async def test_reference_forms(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    pid = world["p1"]["id"]
    aid = world["allergy"]["id"]
    assert await _ids(client, f"AllergyIntolerance?patient={pid}") == [aid]
    assert await _ids(client, f"AllergyIntolerance?patient=Patient/{pid}") == [aid]
    assert await _ids(client, f"AllergyIntolerance?patient=http://test/fhir/Patient/{pid}") == [aid]
    assert await _ids(client, f"AllergyIntolerance?patient:missing=false&_id={aid}") == [aid]
    assert await _ids(client, f"AllergyIntolerance?patient:missing=true&_id={aid}") == []


async def test_chaining_one_and_two_levels(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    tag = world["tag"]
    aid = world["allergy"]["id"]
    assert await _ids(client, f"AllergyIntolerance?patient.family=lefevre{tag}") == [aid]
    assert await _ids(client, f"AllergyIntolerance?patient:Patient.family=lefevre{tag}") == [aid]
    assert await _ids(client, f"AllergyIntolerance?patient.organization.name=chu de rennes {tag}") == [aid]
    assert await _ids(client, f"AllergyIntolerance?patient.family=nobody{tag}") == []


async def test_reverse_chaining_has(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    tag = world["tag"]
    p1 = world["p1"]["id"]
    both = f"{p1},{world['p2']['id']}"
    assert await _ids(client, f"Patient?_has:AllergyIntolerance:patient:code:text=penicil&_id={both}") == [p1]
    nested = f"Organization?_has:Patient:organization:_has:AllergyIntolerance:patient:code:text=penicilline&name=chu de rennes {tag}"
    assert await _ids(client, nested) == [world["org"]["id"]]


async def test_include_and_revinclude(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    pid = world["p1"]["id"]
    r = (
        await client.get(
            f"ExplanationOfBenefit?patient={pid}&created=ge2024-01&_include=ExplanationOfBenefit:provider"
        )
    ).json()
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in r["entry"]}
    assert modes == {("ExplanationOfBenefit", "match"), ("Organization", "include")}
    assert r["total"] == 1
    r = (
        await client.get(
            f"Patient?_id={pid}&_revinclude=AllergyIntolerance:patient&_revinclude=DocumentReference:subject"
        )
    ).json()
    kinds = sorted(e["resource"]["resourceType"] for e in r["entry"] if e["search"]["mode"] == "include")
    assert kinds == ["AllergyIntolerance", "DocumentReference", "DocumentReference", "DocumentReference"]
    assert r["total"] == 1
    r = (
        await client.get(
            f"AllergyIntolerance?patient={pid}&_include=AllergyIntolerance:patient"
            "&_include:iterate=Patient:general-practitioner"
        )
    ).json()
    kinds = sorted(e["resource"]["resourceType"] for e in r["entry"] if e["search"]["mode"] == "include")
    assert kinds == ["Patient", "Practitioner"]


async def test_paging_is_stable_while_writes_happen(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:10]
    for i in range(7):
        await _post(client, patient(family=f"Paging{tag}", telecom=[{"system": "phone", "value": f"0{i}"}]))
    first = (await client.get(f"Patient?family=paging{tag}&_count=3&_sort=family")).json()
    assert first["total"] == 7 and len(first["entry"]) == 3
    seen = [e["resource"]["id"] for e in first["entry"]]
    # A write between pages neither shifts nor duplicates what the next page returns.
    await _post(client, patient(family=f"Paging{tag}"))
    url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    while url:
        page = (await client.get(url)).json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    # Keyset paging: nothing repeated, nothing of the original seven skipped; the newcomer shows up only
    # if it sorts after the page already read.
    assert len(seen) == len(set(seen)) in {7, 8}
    prev_page = (
        await client.get(next(link["url"] for link in page["link"] if link["relation"] == "previous"))
    ).json()
    last = len(page["entry"])
    # "previous" of the last page is the three resources just before it.
    assert [e["resource"]["id"] for e in prev_page["entry"]] == seen[-(last + 3) : -last]


async def test_count_zero_total_none_and_summary_count(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    pid = world["p1"]["id"]
    r = (await client.get(f"DocumentReference?subject=Patient/{pid}&_count=0")).json()
    assert r["total"] == 3 and "entry" not in r
    r = (await client.get(f"DocumentReference?subject=Patient/{pid}&_summary=count")).json()
    assert r["total"] == 3 and "entry" not in r
    r = (await client.get(f"DocumentReference?subject=Patient/{pid}&_total=none")).json()
    assert "total" not in r and len(r["entry"]) == 3


async def test_unknown_parameters_lenient_by_default_strict_on_request(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    pid = world["p1"]["id"]
    r = await client.get(f"Patient?_id={pid}&shoe-size=42")
    assert r.status_code == 200
    self_link = next(link["url"] for link in r.json()["link"] if link["relation"] == "self")
    assert "shoe-size" not in self_link and f"_id={pid}" in self_link
    r = await client.get(f"Patient?_id={pid}&shoe-size=42", headers={"Prefer": "handling=strict"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["shoe-size"]


async def test_bad_modifier_and_bad_values_are_400(client: httpx.AsyncClient) -> None:
    for q in [
        "Patient?gender:contains=x",
        "Patient?birthdate:exact=2020",
        "Patient?family:bogus=x",
        "Patient?_sort=shoe",
        "Patient?_count=ten",
        "Patient?_include=Nope:x",
        "Patient?_contained=true",
        "Patient?active:missing=perhaps",
        "Patient?gender=",
    ]:
        r = await client.get(q)
        assert r.status_code == 400, q
        assert r.json()["resourceType"] == "OperationOutcome"


async def test_compartment_search(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    pid = world["p1"]["id"]
    ids = await _ids(client, f"Patient/{pid}/DocumentReference?type={LOINC}|11488-4")
    assert sorted(ids) == sorted([world["docs"][0]["id"], world["docs"][2]["id"]])
    assert await _ids(client, f"Patient/{world['p2']['id']}/DocumentReference") == []
    assert (await client.get(f"Patient/{pid}/Organization")).status_code == 404


async def test_post_search_equals_get(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    r = await client.post(
        "Patient/_search",
        content=f"family=lefevre{world['tag']}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [world["p1"]["id"]]


async def test_escaped_comma_is_a_literal(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    p = await _post(client, patient(identifier=[{"system": "urn:x", "value": f"a,b{tag}"}]))
    assert await _ids(client, f"Patient?identifier=urn:x|a\\,b{tag}") == [p["id"]]
    assert await _ids(client, f"Patient?identifier=urn:x|a,b{tag}") == []


async def test_system_search_across_types_pages_through_all(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:10]
    tagged = {"tag": [{"system": "urn:test", "code": tag}]}
    made = set()
    for _ in range(3):
        made.add((await _post(client, patient(meta=tagged)))["id"])
    for _ in range(2):
        made.add((await _post(client, {"resourceType": "Practitioner", "meta": tagged}))["id"])
    first = (await client.get(f"?_type=Patient,Practitioner&_tag=urn:test|{tag}&_count=2")).json()
    assert first["total"] == 5
    seen = [e["resource"]["id"] for e in first["entry"]]
    url = next((link["url"] for link in first["link"] if link["relation"] == "next"), None)
    while url:
        page = (await client.get(url)).json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert sorted(seen) == sorted(made)
    assert (await client.get("?_type=Patient,Practitioner&family=x")).status_code == 400
    assert (await client.get("?_type=Patient&_sort=_id")).status_code == 400
    assert (await client.get("?_type=Observation")).status_code == 404


async def test_includes_of_a_large_page_bring_every_target(client: httpx.AsyncClient) -> None:
    family = "Inclus" + uuid.uuid4().hex[:8]
    entries = []
    for i in range(70):
        entries.append(
            {
                "fullUrl": f"urn:uuid:p{i}",
                "resource": patient(family),
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        allergy = {"resourceType": "AllergyIntolerance", "patient": {"reference": f"urn:uuid:p{i}"}}
        entries.append({"resource": allergy, "request": {"method": "POST", "url": "AllergyIntolerance"}})
    r = await client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 200, r.text
    page = (
        await client.get(f"Patient?family={family}&_count=100&_revinclude=AllergyIntolerance:patient")
    ).json()
    included = [e["resource"] for e in page["entry"] if e["search"]["mode"] == "include"]
    patients = {e["resource"]["id"] for e in page["entry"] if e["search"]["mode"] == "match"}
    assert len(patients) == 70
    assert {a["patient"]["reference"] for a in included} == {f"Patient/{p}" for p in patients}
    back = (
        await client.get(
            f"AllergyIntolerance?patient.family={family}&_count=100&_include=AllergyIntolerance:patient"
        )
    ).json()
    assert {e["resource"]["id"] for e in back["entry"] if e["search"]["mode"] == "include"} == patients
