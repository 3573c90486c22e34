"""The bulk write path (imports, demo data): validated and indexed like single creates, all or nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.fhir.errors import BadRequest, Unprocessable
from fhir_server.fhir.rest import ResourceService
from fhir_server.storage.client import Mongo
from tests.conftest import patient, snapshot


async def test_bulk_created_resources_are_readable_searchable_and_versioned(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    service: ResourceService = app.state.services.resources
    family = f"Bulk{uuid.uuid4().hex[:8]}"
    records = await service.create_many([patient(family=family) for _ in range(5)])
    assert len({r.id for r in records}) == 5
    for rec in records:
        r = await client.get(f"Patient/{rec.id}")
        assert r.status_code == 200 and r.json()["meta"]["versionId"] == "1"
        history = (await client.get(f"Patient/{rec.id}/_history")).json()
        assert history["total"] == 1
    found = (await client.get("Patient", params={"family": family.lower()})).json()
    assert found["total"] == 5


@pytest.mark.parametrize(
    "bad", [{"resourceType": "Patient", "gender": "xx"}, {"resourceType": "Patient", "x": 1}]
)
async def test_one_bad_resource_fails_the_batch_and_writes_nothing(
    app: FastAPI, mongo: Mongo, bad: dict[str, object]
) -> None:
    service: ResourceService = app.state.services.resources
    before = await snapshot(mongo)
    with pytest.raises((BadRequest, Unprocessable)):
        await service.create_many([patient(), bad])
    assert await snapshot(mongo) == before
