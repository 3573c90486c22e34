"""Closing a DMP: no new data (422), reads still work for the patient, reopening within retention."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from fhir_server.storage.client import Mongo
from tests.conftest import bearer, snapshot
from tests.dmp.ins import closed, dmp_patient, reopened

PATCH = {"Content-Type": "application/json-patch+json"}


def _allergy(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": f"Patient/{pid}"},
        "code": {"text": "Pénicilline"},
    }


async def _patient_headers(app: FastAPI, pid: str) -> dict[str, str]:
    return await bearer(app, "patient/*.*", patient=pid, role="patient", fhirUser=f"Patient/{pid}")


async def _closed_dmp(
    client: httpx.AsyncClient, app: FastAPI
) -> tuple[str, dict[str, Any], str, dict[str, str]]:
    """A DMP with one allergy, closed by its patient: (id, Patient, allergy id, patient's headers)."""
    created = (await client.post("Patient", json=dmp_patient())).json()
    pid = created["id"]
    allergy = (await client.post("AllergyIntolerance", json=_allergy(pid))).json()["id"]
    me = await _patient_headers(app, pid)
    r = await client.put(f"Patient/{pid}", json=closed(created), headers=me)
    assert r.status_code == 200, r.text
    return pid, r.json(), allergy, me


async def test_a_closed_dmp_accepts_no_new_data(
    client: httpx.AsyncClient, app: FastAPI, mongo: Mongo
) -> None:
    pid, patient, allergy, me = await _closed_dmp(client, app)
    before = await snapshot(mongo)
    current = (await client.get(f"AllergyIntolerance/{allergy}")).json()
    attempts = [
        await client.post("AllergyIntolerance", json=_allergy(pid)),
        await client.post("AllergyIntolerance", json=_allergy(pid), headers=me),
        await client.put(f"AllergyIntolerance/{allergy}", json={**current, "criticality": "high"}),
        await client.delete(f"AllergyIntolerance/{allergy}"),
        await client.put(f"Patient/{pid}", json={**patient, "name": [{"family": "Martin"}]}, headers=me),
        await client.patch(
            f"Patient/{pid}", json=[{"op": "add", "path": "/gender", "value": "female"}], headers=PATCH
        ),
        await client.delete(f"Patient/{pid}"),
        await client.post(
            "",
            json={
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"resource": _allergy(pid), "request": {"method": "POST", "url": "AllergyIntolerance"}}
                ],
            },
        ),
    ]
    for r in attempts:
        assert r.status_code == 422, (r.request.method, r.request.url, r.text)
        assert "closed" in r.json()["issue"][0]["diagnostics"]
    assert await snapshot(mongo) == before


async def test_moving_a_resource_out_of_a_closed_dmp_is_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, _, allergy, _ = await _closed_dmp(client, app)
    other = (await client.post("Patient", json=dmp_patient())).json()["id"]
    current = (await client.get(f"AllergyIntolerance/{allergy}")).json()
    moved = {**current, "patient": {"reference": f"Patient/{other}"}}
    assert (await client.put(f"AllergyIntolerance/{allergy}", json=moved)).status_code == 422


async def test_the_patient_still_reads_a_closed_dmp(client: httpx.AsyncClient, app: FastAPI) -> None:
    pid, _, allergy, me = await _closed_dmp(client, app)
    read = await client.get(f"Patient/{pid}", headers=me)
    assert read.status_code == 200 and read.json()["active"] is False
    found = (await client.get("AllergyIntolerance", params={"patient": pid}, headers=me)).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [allergy]
    assert (await client.get(f"Patient/{pid}/_history", headers=me)).json()["total"] == 2


async def test_reopening_restores_normal_use(client: httpx.AsyncClient, app: FastAPI) -> None:
    pid, patient, _, me = await _closed_dmp(client, app)
    r = await client.put(f"Patient/{pid}", json=reopened(patient), headers=me)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True
    assert (await client.post("AllergyIntolerance", json=_allergy(pid), headers=me)).status_code == 201
    # Closing again works too (here by an operator, with a JSON Patch).
    ops = [
        {"op": "replace", "path": "/active", "value": False},
        {"op": "add", "path": "/extension", "value": closed(r.json())["extension"]},
    ]
    assert (await client.patch(f"Patient/{pid}", json=ops, headers=PATCH)).status_code == 200
    assert (await client.post("AllergyIntolerance", json=_allergy(pid))).status_code == 422


async def test_closing_needs_a_reason_a_date_and_active_false(client: httpx.AsyncClient) -> None:
    created = (await client.post("Patient", json=dmp_patient())).json()
    pid = created["id"]
    good = closed(created)
    no_reason = {
        **good,
        "extension": [{**good["extension"][0], "extension": good["extension"][0]["extension"][:1]}],
    }
    future = {
        **good,
        "extension": [
            {
                **good["extension"][0],
                "extension": [
                    {"url": "date", "valueDate": "2999-01-01"},
                    good["extension"][0]["extension"][1],
                ],
            }
        ],
    }
    still_active = {**good, "active": True}
    born_closed = await client.post("Patient", json=closed(dmp_patient()))
    assert born_closed.status_code == 422
    for body, expression in [
        (no_reason, "Patient.extension[0]"),
        (future, "Patient.extension[0]"),
        (still_active, "Patient.active"),
    ]:
        r = await client.put(f"Patient/{pid}", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["issue"][0]["expression"] == [expression]


async def test_only_the_patient_a_representative_or_an_operator_closes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    created = (await client.post("Patient", json=dmp_patient())).json()
    pid = created["id"]
    cnam = await bearer(app, "system/*.*", role="cnam")
    assert (await client.put(f"Patient/{pid}", json=closed(created), headers=cnam)).status_code == 403
    other = await _patient_headers(app, "someone-else")
    assert (await client.put(f"Patient/{pid}", json=closed(created), headers=other)).status_code == 403
    rep = await bearer(app, "patient/*.*", patient=pid, role="representative")
    assert (await client.put(f"Patient/{pid}", json=closed(created), headers=rep)).status_code == 200


async def test_reopening_after_the_retention_period_is_refused(
    client: httpx.AsyncClient, app: FastAPI, mongo: Mongo
) -> None:
    pid, patient, _, me = await _closed_dmp(client, app)
    # As if it had been closed eleven years ago (the retention period is 10 years).
    await mongo.db["dmp"].update_one({"_id": pid}, {"$set": {"closed": datetime(2014, 1, 1, tzinfo=UTC)}})
    r = await client.put(f"Patient/{pid}", json=reopened(patient), headers=me)
    assert r.status_code == 422 and "10 years" in r.json()["issue"][0]["diagnostics"]
