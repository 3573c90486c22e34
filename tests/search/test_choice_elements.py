"""Parameters whose expression names a choice element without its type (``MedicationStatement.effective``)
find the values of every type of the choice (``effectiveDateTime``, ``effectivePeriod``)."""

from __future__ import annotations

import uuid

import httpx


async def test_effective_as_datetime_or_period(client: httpx.AsyncClient) -> None:
    pid = (await client.post("Patient", json={"resourceType": "Patient"})).json()["id"]
    base = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {"text": uuid.uuid4().hex},
        "subject": {"reference": f"Patient/{pid}"},
    }
    at = await client.post("MedicationStatement", json={**base, "effectiveDateTime": "2026-02-03"})
    over = await client.post(
        "MedicationStatement", json={**base, "effectivePeriod": {"start": "2026-01-01", "end": "2026-06-30"}}
    )
    assert at.status_code == over.status_code == 201

    async def ids(value: str) -> set[str]:
        bundle = (await client.get("MedicationStatement", params={"subject": pid, "effective": value})).json()
        return {e["resource"]["id"] for e in bundle.get("entry", [])}

    assert await ids("2026-02-03") == {at.json()["id"]}
    assert await ids("ge2026-03-01") == {over.json()["id"]}
    assert await ids("2025") == set()
