"""``fhir-server purge-closed``: DMPs closed longer than the retention period go, every version, audited."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.cli import main
from fhir_server.config import Settings
from fhir_server.storage.client import Mongo
from tests.conftest import snapshot
from tests.dmp.ins import INS_NIR, closed, dmp_patient, fresh_nir

PURGED_PATIENT = "https://dmp-fhir.org/NamingSystem/purged-patient"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_MONGO_URI", settings.mongo_uri)
    monkeypatch.setenv("FHIR_MONGO_DB", settings.mongo_db)


async def _dmp_with_data(client: httpx.AsyncClient, nir: str) -> tuple[str, dict[str, Any]]:
    created = (await client.post("Patient", json=dmp_patient(nir, channel="cpam"))).json()
    pid = created["id"]
    ref = {"reference": f"Patient/{pid}"}
    binary = (
        await client.post(
            "Binary", json={"resourceType": "Binary", "contentType": "text/plain", "data": "Ym9uam91cg=="}
        )
    ).json()
    await client.post(
        "DocumentReference",
        json={
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": ref,
            "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
            "content": [{"attachment": {"contentType": "text/plain", "url": f"Binary/{binary['id']}"}}],
        },
    )
    allergy = (
        await client.post("AllergyIntolerance", json={"resourceType": "AllergyIntolerance", "patient": ref})
    ).json()
    await client.put(f"AllergyIntolerance/{allergy['id']}", json={**allergy, "criticality": "high"})
    return pid, created


async def _holdings(mongo: Mongo, pid: str) -> int:
    n = await mongo.db["history"].count_documents({"$or": [{"comp": pid}, {"t": "Patient", "id": pid}]})
    for name in ("Patient", "DocumentReference", "Binary", "AllergyIntolerance", "Consent"):
        n += await mongo.db[name].count_documents({"$or": [{"_id": pid}, {"comp": pid}]})
    return n


def _purge(*args: str) -> list[str]:
    return ["purge-closed", *args]


async def test_purge_removes_every_version_of_dmps_past_retention_and_audits_it(
    client: httpx.AsyncClient, mongo: Mongo, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    nir = fresh_nir()
    old_pid, old = await _dmp_with_data(client, nir)
    assert (await client.put(f"Patient/{old_pid}", json=closed(old))).status_code == 200
    kept_pid, _ = await _dmp_with_data(client, fresh_nir())
    today = date.today()
    later = today.replace(year=today.year + 11).isoformat()
    assert await _holdings(mongo, old_pid) >= 10

    # Within retention nothing goes; a dry run past it says what would go and changes nothing.
    assert (
        await asyncio.to_thread(main, _purge("--as-of", today.replace(year=today.year + 9).isoformat())) == 0
    )
    assert await _holdings(mongo, old_pid) >= 10
    before = await snapshot(mongo)
    assert await asyncio.to_thread(main, _purge("--dry-run", "--as-of", later)) == 0
    out = capsys.readouterr()
    assert f"would purge Patient/{old_pid}" in out.out and "1 AllergyIntolerance" in out.out
    assert "purge (dry run) [" in out.err
    assert await snapshot(mongo) == before

    assert await asyncio.to_thread(main, _purge("--as-of", later)) == 0
    out = capsys.readouterr()
    assert f"purged Patient/{old_pid}" in out.out
    assert await _holdings(mongo, old_pid) == 0
    assert (await client.get(f"Patient/{old_pid}")).status_code == 404
    assert (await client.get(f"Patient/{old_pid}/_history/1")).status_code == 404
    assert await _holdings(mongo, kept_pid) > 0
    # The purge's trace survives a second purge, and the INS is free again.
    assert await asyncio.to_thread(main, _purge("--as-of", later)) == 0
    traces = await mongo.db["AuditEvent"].count_documents({"res.entity.what.identifier.value": old_pid})
    assert traces == 1
    assert (await client.post("Patient", json=dmp_patient(nir))).status_code == 201
    found = (await client.get("Patient", params={"identifier": f"{INS_NIR}|{nir}"})).json()
    assert found["total"] == 1


async def test_a_purged_dmp_leaves_shared_reference_data(
    client: httpx.AsyncClient, app: FastAPI, cli_env: None
) -> None:
    doctor = (
        await client.post(
            "Practitioner", json={"resourceType": "Practitioner", "name": [{"family": "Martin"}]}
        )
    ).json()
    created = (
        await client.post(
            "Patient", json=dmp_patient(generalPractitioner=[{"reference": f"Practitioner/{doctor['id']}"}])
        )
    ).json()
    assert (await client.put(f"Patient/{created['id']}", json=closed(created))).status_code == 200
    today = date.today()
    assert (
        await asyncio.to_thread(main, _purge("--as-of", today.replace(year=today.year + 11).isoformat())) == 0
    )
    assert (await client.get(f"Practitioner/{doctor['id']}")).status_code == 200
