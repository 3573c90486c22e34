"""One DMP per INS: a second opening is a 409 naming the first; conditional create returns it; the
rule holds under concurrent requests."""

from __future__ import annotations

import asyncio

import httpx

from fhir_server.storage.client import Mongo
from tests.conftest import snapshot
from tests.dmp.ins import INS_NIR, dmp_patient, fresh_nir


async def test_second_creation_with_the_same_ins_is_409_naming_the_first(
    client: httpx.AsyncClient, mongo: Mongo
) -> None:
    nir = fresh_nir()
    first = (await client.post("Patient", json=dmp_patient(nir))).json()
    before = await snapshot(mongo)
    r = await client.post("Patient", json=dmp_patient(nir))
    assert r.status_code == 409
    assert f"Patient/{first['id']}" in r.json()["issue"][0]["diagnostics"]
    assert r.json()["issue"][0]["code"] == "duplicate"
    assert r.json()["issue"][0]["expression"] == ["Patient.identifier[0].value"]
    r = await client.put("Patient/dup-by-put", json={**dmp_patient(nir), "id": "dup-by-put"})
    assert r.status_code == 409
    assert await snapshot(mongo) == before


async def test_conditional_create_on_the_ins_returns_the_existing_dmp(client: httpx.AsyncClient) -> None:
    nir = fresh_nir()
    criteria = {"If-None-Exist": f"identifier={INS_NIR}|{nir}"}
    first = await client.post("Patient", json=dmp_patient(nir), headers=criteria)
    again = await client.post("Patient", json=dmp_patient(nir), headers=criteria)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


async def test_moving_an_ins_onto_another_patient_is_409(client: httpx.AsyncClient) -> None:
    nir = fresh_nir()
    owner = (await client.post("Patient", json=dmp_patient(nir))).json()
    other = (await client.post("Patient", json=dmp_patient())).json()
    r = await client.put(f"Patient/{other['id']}", json=dmp_patient(nir, id=other["id"]))
    assert r.status_code == 409 and owner["id"] in r.json()["issue"][0]["diagnostics"]


async def test_an_ins_given_up_or_deleted_can_open_another_dmp(client: httpx.AsyncClient) -> None:
    nir, replacement = fresh_nir(), fresh_nir()
    first = (await client.post("Patient", json=dmp_patient(nir))).json()
    # A corrected INS frees the old one...
    fixed = await client.put(f"Patient/{first['id']}", json=dmp_patient(replacement, id=first["id"]))
    assert fixed.status_code == 200
    assert (await client.post("Patient", json=dmp_patient(nir))).status_code == 201
    # ...and so does deleting the Patient.
    assert (await client.delete(f"Patient/{first['id']}")).status_code == 204
    assert (await client.post("Patient", json=dmp_patient(replacement))).status_code == 201


async def test_rewriting_a_dmp_with_its_own_ins_is_fine(client: httpx.AsyncClient) -> None:
    created = (await client.post("Patient", json=dmp_patient())).json()
    r = await client.put(f"Patient/{created['id']}", json={**created, "name": [{"family": "Martin"}]})
    assert r.status_code == 200


async def test_concurrent_openings_with_one_ins_give_exactly_one_dmp(
    live_server: str, live_headers: dict[str, str], client: httpx.AsyncClient
) -> None:
    nir = fresh_nir()
    async with httpx.AsyncClient(base_url=live_server + "/", headers=live_headers, timeout=60) as http:
        responses = await asyncio.gather(*(http.post("Patient", json=dmp_patient(nir)) for _ in range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409, 409], [r.text for r in responses]
    winner = next(r.json()["id"] for r in responses if r.status_code == 201)
    found = (await client.get("Patient", params={"identifier": f"{INS_NIR}|{nir}"})).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [winner]


async def test_transaction_opening_with_if_none_exist_links_to_the_existing_dmp(
    client: httpx.AsyncClient,
) -> None:
    nir = fresh_nir()
    first = (await client.post("Patient", json=dmp_patient(nir))).json()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b9b7d7e-2f0e-4d51-9a3c-4a1f6f3c2d10",
                "resource": dmp_patient(nir),
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={INS_NIR}|{nir}"},
            },
            {
                "resource": {
                    "resourceType": "AllergyIntolerance",
                    "patient": {"reference": "urn:uuid:0b9b7d7e-2f0e-4d51-9a3c-4a1f6f3c2d10"},
                },
                "request": {"method": "POST", "url": "AllergyIntolerance"},
            },
        ],
    }
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    assert r.json()["entry"][0]["response"]["status"] == "200 OK"
    found = (await client.get("AllergyIntolerance", params={"patient": first["id"]})).json()
    assert found["total"] == 1
    # Without ifNoneExist the same transaction is a 409 and writes nothing.
    del bundle["entry"][0]["request"]["ifNoneExist"]
    assert (await client.post("", json=bundle)).status_code == 409
