"""A professional's policy is remembered between requests, but a change of its inputs is seen by the
very next request: a revoked authorization, a block, a new or former attending doctor."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.policy.dmp import consent, create, document, new_patient, new_practitioner, professional


async def test_revoking_and_blocking_apply_to_the_next_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    doctor = await new_practitioner(client, "10")
    pid = await new_patient(client, "Fraîcheur")
    h = await professional(app, doctor, "10")
    cid = await create(client, consent(pid, doctor))
    assert (await client.get(f"Patient/{pid}", headers=h)).status_code == 200
    revoked = {**(await client.get(f"Consent/{cid}")).json(), "status": "inactive"}
    assert (await client.put(f"Consent/{cid}", json=revoked)).status_code == 200
    assert (await client.get(f"Patient/{pid}", headers=h)).status_code == 403
    active = {**revoked, "status": "active"}
    assert (await client.put(f"Consent/{cid}", json=active)).status_code == 200
    assert (await client.get(f"Patient/{pid}", headers=h)).status_code == 200
    await create(client, consent(pid, doctor, effect="deny"))
    assert (await client.get(f"Patient/{pid}", headers=h)).status_code == 403


async def test_becoming_and_ceasing_to_be_the_attending_doctor(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    doctor = await new_practitioner(client, "10")
    pid = await new_patient(client, "Traitant")
    await create(client, consent(pid, doctor))
    masked = await create(client, document(pid, "11488-4", labels=("MASQUE_PS",)))
    h = await professional(app, doctor, "10")
    assert (await client.get(f"DocumentReference/{masked}", headers=h)).status_code == 403
    patient = (await client.get(f"Patient/{pid}")).json()
    patient["generalPractitioner"] = [{"reference": f"Practitioner/{doctor}"}]
    assert (await client.put(f"Patient/{pid}", json=patient)).status_code == 200
    assert (await client.get(f"DocumentReference/{masked}", headers=h)).status_code == 200
    del patient["generalPractitioner"]
    assert (await client.put(f"Patient/{pid}", json=patient)).status_code == 200
    assert (await client.get(f"DocumentReference/{masked}", headers=h)).status_code == 403
