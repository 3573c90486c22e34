"""An export is the data as it was at its transactionTime, whatever is written while it runs."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.bulk.conftest import kick_off, resources, worker
from tests.conftest import patient


async def test_writes_after_the_kick_off_are_not_exported_and_changed_resources_come_as_they_were(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    old, new = "Old" + uuid.uuid4().hex[:8], "New" + uuid.uuid4().hex[:8]
    kept = (await create_patient(bulk, old))["id"]
    changed = (await create_patient(bulk, old))["id"]
    removed = (await create_patient(bulk, old))["id"]
    joins_later = (await create_patient(bulk, new))["id"]
    status = await kick_off(bulk, params={"_type": "Patient", "_typeFilter": f"Patient?family={old}"})
    # While the export waits for a worker: one updated, one deleted, one created, one made to match.
    r = await bulk.put(f"Patient/{changed}", json={**patient(new), "id": changed})
    assert r.status_code == 200
    assert (await bulk.delete(f"Patient/{removed}")).status_code in (200, 204)
    created = (await create_patient(bulk, old))["id"]
    r = await bulk.put(f"Patient/{joins_later}", json={**patient(old), "id": joins_later})
    assert r.status_code == 200
    await worker(bulk_app).run_pending()
    manifest = (await bulk.get(status)).json()
    found = {p["id"]: p for p in await resources(bulk, manifest)}
    assert sorted(found) == sorted([kept, changed, removed])
    assert created not in found and joins_later not in found
    assert found[changed]["name"][0]["family"] == old
    assert found[changed]["meta"]["versionId"] == "1"
    assert all(p["meta"]["lastUpdated"] <= manifest["transactionTime"] for p in found.values())


async def create_patient(c: httpx.AsyncClient, family: str) -> dict[str, str]:
    r = await c.post("Patient", json=patient(family))
    assert r.status_code == 201, r.text
    body: dict[str, str] = r.json()
    return body
