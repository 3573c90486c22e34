"""batch and transaction Bundles: all-or-nothing, the spec's processing order, reference resolution."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from fhir_server.storage.client import Mongo
from tests.conftest import patient, snapshot


def _entry(
    method: str, url: str, resource: dict[str, Any] | None = None, full_url: str | None = None, **request: str
) -> dict[str, Any]:
    e: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        e["resource"] = resource
    if full_url:
        e["fullUrl"] = full_url
    return e


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


async def test_transaction_resolves_urn_uuid_references(client: httpx.AsyncClient) -> None:
    p_urn, o_urn = _urn(), _urn()
    ident = uuid.uuid4().hex
    bundle = _bundle(
        "transaction",
        _entry(
            "POST",
            "AllergyIntolerance",
            {
                "resourceType": "AllergyIntolerance",
                "patient": {"reference": p_urn},
                "recorder": {"reference": "Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|" + ident},
            },
        ),
        _entry("POST", "Patient", patient(managingOrganization={"reference": o_urn}), p_urn),
        _entry("POST", "Organization", {"resourceType": "Organization", "name": "CHU"}, o_urn),
    )
    # The conditional reference needs exactly one match: create it first.
    pr = await client.post(
        "Practitioner",
        json={
            "resourceType": "Practitioner",
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": ident}],
        },
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["201 Created"] * 3
    allergy_loc, patient_loc, org_loc = (e["response"]["location"] for e in out["entry"])
    patient_ref = "/".join(patient_loc.split("/")[:2])
    allergy = (await client.get("/".join(allergy_loc.split("/")[:2]))).json()
    assert allergy["patient"]["reference"] == patient_ref
    assert allergy["recorder"]["reference"] == f"Practitioner/{pr.json()['id']}"
    stored_patient = (await client.get(patient_ref)).json()
    assert stored_patient["managingOrganization"]["reference"] == "/".join(org_loc.split("/")[:2])


async def test_transaction_is_all_or_nothing(client: httpx.AsyncClient, mongo: Mongo) -> None:
    existing = (await client.post("Patient", json=patient())).json()
    other = (await client.post("Patient", json=patient())).json()
    before = await snapshot(mongo)
    bundle = _bundle(
        "transaction",
        _entry("POST", "Patient", patient(family="Premier")),
        _entry("PUT", f"Patient/{existing['id']}", {**existing, "gender": "male"}),
        _entry("DELETE", f"Patient/{other['id']}"),
        _entry("POST", "Patient", patient(gender="not-a-gender")),
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 422
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[3]" in outcome["issue"][0]["diagnostics"]
    assert await snapshot(mongo) == before


async def test_transaction_processes_delete_before_post_before_put_before_get(
    client: httpx.AsyncClient,
) -> None:
    victim = (await client.post("Patient", json=patient())).json()
    pid = f"tx-order-{uuid.uuid4().hex[:8]}"
    bundle = _bundle(
        "transaction",
        _entry("GET", f"Patient/{pid}"),
        _entry("PUT", f"Patient/{pid}", patient(id=pid, gender="male")),
        _entry("DELETE", f"Patient/{victim['id']}"),
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    get_entry, put_entry, delete_entry = r.json()["entry"]
    # The GET ran last, so it sees the PUT's result; the response keeps the request order.
    assert get_entry["resource"]["gender"] == "male"
    assert put_entry["response"]["status"] == "201 Created"
    assert delete_entry["response"]["status"] == "204 No Content"
    assert (await client.get(f"Patient/{victim['id']}")).status_code == 410


async def test_transaction_conditional_create_reuses_existing(client: httpx.AsyncClient) -> None:
    ident = uuid.uuid4().hex
    ins = {"system": "https://hopital.example.fr/ipp", "value": ident}
    first = (await client.post("Patient", json=patient(identifier=[ins]))).json()
    p_urn = _urn()
    bundle = _bundle(
        "transaction",
        _entry(
            "POST",
            "Patient",
            patient(identifier=[ins]),
            p_urn,
            ifNoneExist=f"identifier=https://hopital.example.fr/ipp|{ident}",
        ),
        _entry(
            "POST",
            "AllergyIntolerance",
            {"resourceType": "AllergyIntolerance", "patient": {"reference": p_urn}},
        ),
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    pat_entry, allergy_entry = r.json()["entry"]
    assert pat_entry["response"]["status"] == "200 OK"
    allergy = (await client.get("/".join(allergy_entry["response"]["location"].split("/")[:2]))).json()
    assert allergy["patient"]["reference"] == f"Patient/{first['id']}"


async def test_transaction_unresolvable_conditional_reference_fails_whole(
    client: httpx.AsyncClient, mongo: Mongo
) -> None:
    before = await snapshot(mongo)
    bundle = _bundle(
        "transaction",
        _entry("POST", "Patient", patient()),
        _entry(
            "POST",
            "AllergyIntolerance",
            {
                "resourceType": "AllergyIntolerance",
                "patient": {"reference": "Patient?identifier=nobody|none"},
            },
        ),
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 412
    assert await snapshot(mongo) == before


async def test_transaction_same_resource_twice_is_400(client: httpx.AsyncClient) -> None:
    bundle = _bundle(
        "transaction",
        _entry("PUT", "Patient/twice", patient(id="twice")),
        _entry("PUT", "Patient/twice", patient(id="twice")),
    )
    assert (await client.post("", json=bundle)).status_code == 400


async def test_batch_reports_each_entry_independently(client: httpx.AsyncClient) -> None:
    existing = (await client.post("Patient", json=patient())).json()
    bundle = _bundle(
        "batch",
        _entry("POST", "Patient", patient(family="Batch")),
        _entry("POST", "Patient", patient(gender="bogus")),
        _entry("GET", f"Patient/{existing['id']}"),
        _entry("GET", "Patient/missing-one"),
    )
    r = await client.post("", json=bundle)
    assert r.status_code == 200
    out = r.json()
    assert out["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses[0] == "201 Created" and statuses[1] == "422" and statuses[2] == "200 OK"
    assert statuses[3] == "404"
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    created = out["entry"][0]["response"]["location"].split("/")
    assert (await client.get(f"{created[0]}/{created[1]}")).status_code == 200


async def test_bundle_of_wrong_type_or_shape_is_400(client: httpx.AsyncClient) -> None:
    for body in [
        {"resourceType": "Bundle", "type": "collection"},
        patient(),
        {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"url": "Patient"}}]},
    ]:
        r = await client.post("", json=body)
        assert r.status_code == 400, body
        assert r.json()["resourceType"] == "OperationOutcome"


async def test_transaction_patch_entry_with_binary(client: httpx.AsyncClient) -> None:
    import base64

    import orjson

    existing = (await client.post("Patient", json=patient())).json()
    ops = orjson.dumps([{"op": "replace", "path": "/gender", "value": "male"}])
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(ops).decode(),
    }
    r = await client.post(
        "", json=_bundle("transaction", _entry("PATCH", f"Patient/{existing['id']}", binary))
    )
    assert r.status_code == 200, r.text
    assert (await client.get(f"Patient/{existing['id']}")).json()["gender"] == "male"
