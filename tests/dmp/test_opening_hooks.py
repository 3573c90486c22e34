"""``on_dmp_opened``: code registered in ``ON_DMP_OPENED`` runs inside the opening's transaction."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.dmp import lifecycle
from fhir_server.fhir.errors import Unprocessable
from fhir_server.storage.client import Mongo
from tests.conftest import bearer, snapshot
from tests.dmp.ins import closed, dmp_patient, reopened


async def test_a_hook_writes_with_the_opening_and_sees_why(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []

    async def feed(event: lifecycle.DmpOpened) -> None:
        seen.append((event.patient_id, event.reason, event.ins))
        coverage = {
            "resourceType": "Coverage",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{event.patient_id}"},
            "payor": [{"display": "Assurance Maladie"}],
        }
        await event.service.create("Coverage", coverage, session=event.session)

    monkeypatch.setattr(lifecycle, "ON_DMP_OPENED", [*lifecycle.ON_DMP_OPENED, feed])
    # The patient opens their DMP online; their token may not write a Coverage, the hook may.
    pid = f"hook-{uuid.uuid4().hex[:12]}"
    me = await bearer(app, "patient/*.*", patient=pid, role="patient", fhirUser=f"Patient/{pid}")
    body = dmp_patient(channel="patient-web", id=pid)
    r = await client.put(f"Patient/{pid}", json=body, headers=me)
    assert r.status_code == 201, r.text
    created = r.json()
    assert seen == [(pid, "created", (("urn:oid:1.2.250.1.213.1.4.8", body["identifier"][0]["value"]),))]
    covers = (await client.get("Coverage", params={"beneficiary": f"Patient/{pid}"})).json()
    assert covers["total"] == 1
    shut = (await client.put(f"Patient/{pid}", json=closed(created), headers=me)).json()
    assert (await client.put(f"Patient/{pid}", json=reopened(shut), headers=me)).status_code == 200
    assert [reason for _, reason, _ in seen] == ["created", "reopened"]


async def test_a_failing_hook_fails_the_opening(
    client: httpx.AsyncClient, mongo: Mongo, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(event: lifecycle.DmpOpened) -> None:
        raise Unprocessable("the reimbursement history could not be loaded")

    monkeypatch.setattr(lifecycle, "ON_DMP_OPENED", [*lifecycle.ON_DMP_OPENED, refuse])
    before = await snapshot(mongo)
    r = await client.post("Patient", json=dmp_patient(channel="pharmacie"))
    assert r.status_code == 422 and "reimbursement" in r.json()["issue"][0]["diagnostics"]
    # Neither the Patient, its INS claim nor the opening Consent was kept.
    assert await snapshot(mongo) == before


async def test_bulk_creation_obeys_the_same_rules(app: FastAPI, client: httpx.AsyncClient) -> None:
    service = app.state.services.resources
    bad = dmp_patient()
    bad["gender"] = "male"
    with pytest.raises(Unprocessable, match="sex digit"):
        await service.create_many([dmp_patient(), bad])
    [made] = await service.create_many([dmp_patient(channel="cpam")])
    consents = (await client.get("Consent", params={"patient": made.id})).json()
    assert consents["total"] == 1


async def test_dmp_for_ins_names_the_dmp_and_whether_it_is_closed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    repo = app.state.services.repo
    created = (await client.post("Patient", json=dmp_patient())).json()
    nir = created["identifier"][0]["value"]
    assert await lifecycle.dmp_for_ins(repo, nir) == lifecycle.DmpRef(created["id"], closed=False)
    await client.put(f"Patient/{created['id']}", json=closed(created))
    assert await lifecycle.dmp_for_ins(repo, nir) == lifecycle.DmpRef(created["id"], closed=True)
    assert await lifecycle.dmp_for_ins(repo, nir, "urn:oid:1.2.250.1.213.1.4.9") is None
