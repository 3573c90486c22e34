"""The Bulk Data Access 2.0 flow as a client sees it: kick-off, status, manifest, files, cancel, limits."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from fastapi import FastAPI

from fhir_server.bulk.jobs import JOBS
from fhir_server.config import Settings
from tests.bulk.conftest import KICK_OFF, by_type, client_for, create, export, kick_off, resources, worker
from tests.conftest import bearer, patient


async def _live_ids(app: FastAPI, rtype: str) -> set[str]:
    return {d["_id"] async for d in app.state.mongo.db[rtype].find({"del": False}, {"_id": 1})}


async def test_system_export_gives_every_live_resource_of_the_types_once(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    pid = (await create(bulk, patient("Flow")))["id"]
    allergy = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": f"Patient/{pid}"},
        "code": {"text": "Pollen"},
    }
    aid = (await create(bulk, allergy))["id"]
    gone = (await create(bulk, patient("Gone")))["id"]
    assert (await bulk.delete(f"Patient/{gone}")).status_code in (200, 204)
    manifest = await export(bulk_app, bulk, params={"_type": "Patient,AllergyIntolerance"})
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/$export?_type=Patient%2CAllergyIntolerance")
    datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
    assert {o["type"] for o in manifest["output"]} == {"Patient", "AllergyIntolerance"}
    assert manifest["error"] == []
    assert "deleted" not in manifest
    found = by_type(await resources(bulk, manifest))
    patient_ids = [r["id"] for r in found["Patient"]]
    assert sorted(patient_ids) == sorted(await _live_ids(bulk_app, "Patient"))
    assert pid in patient_ids and gone not in patient_ids
    assert aid in {r["id"] for r in found["AllergyIntolerance"]}


async def test_status_is_202_with_progress_until_a_worker_is_done(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    status = await kick_off(bulk, params={"_type": "Patient"})
    assert status.startswith("http://test/fhir/bulk/status/")
    r = await bulk.get(status)
    assert r.status_code == 202
    assert r.headers["X-Progress"] == "queued"
    assert int(r.headers["Retry-After"]) > 0
    await worker(bulk_app).run_pending()
    r = await bulk.get(status)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert "Expires" in r.headers


async def test_files_are_ndjson_split_at_the_size_cap_and_gzipped_on_request(
    bulk_app: FastAPI, bulk: httpx.AsyncClient, bulk_settings: Settings
) -> None:
    for i in range(30):
        await create(bulk, patient(f"Split{i}"))
    manifest = await export(bulk_app, bulk, params={"_type": "Patient"})
    assert len(manifest["output"]) > 1
    url = manifest["output"][0]["url"]
    plain = await bulk.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.headers["content-type"].startswith("application/fhir+ndjson")
    assert "content-encoding" not in plain.headers
    assert len(plain.content) <= bulk_settings.export_file_max_bytes
    assert "Expires" in plain.headers
    packed = await bulk.get(url, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    # httpx decodes the transfer encoding: the same bytes arrive either way.
    assert packed.content == plain.content
    raw = client_for(bulk_app, {"Authorization": bulk.headers["Authorization"]})
    async with raw, raw.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as s:
        body = b"".join([chunk async for chunk in s.aiter_raw()])
    assert gzip.decompress(body) == plain.content
    assert all(orjson.loads(line)["resourceType"] == "Patient" for line in plain.content.splitlines())


async def test_status_and_files_need_a_token_of_the_client_that_asked(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    await create(bulk, patient("Owner"))
    status = await kick_off(bulk, params={"_type": "Patient"})
    await worker(bulk_app).run_pending()
    url = (await bulk.get(status)).json()["output"][0]["url"]
    other = await bearer(bulk_app, "system/*.*", client_id="other-client", sub="other-client")
    assert (await bulk.get(status, headers=other)).status_code == 403
    assert (await bulk.get(url, headers=other)).status_code == 403
    assert (await bulk.delete(status, headers=other)).status_code == 403
    no_token = client_for(bulk_app, {})
    async with no_token:
        assert (await no_token.get(url)).status_code == 401
    assert (await bulk.get(url)).status_code == 200
    assert (await bulk.get(url.rsplit("/", 1)[0] + "/..%2F..%2Fsecret.ndjson")).status_code == 404


async def test_an_expired_export_is_gone_with_its_files(
    bulk_app: FastAPI, bulk: httpx.AsyncClient, bulk_settings: Settings
) -> None:
    await create(bulk, patient("Expiring"))
    status = await kick_off(bulk, params={"_type": "Patient"})
    await worker(bulk_app).run_pending()
    r = await bulk.get(status)
    expires = datetime.strptime(r.headers["Expires"], "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert expires > datetime.now(UTC) + timedelta(seconds=bulk_settings.export_ttl - 60)
    url = r.json()["output"][0]["url"]
    job_id = status.rsplit("/", 1)[1]
    folder = bulk_app.state.export_jobs.job_folder(job_id)
    assert any(folder.iterdir())
    # As if the TTL had run out.
    await bulk_app.state.mongo.db[JOBS].update_one(
        {"_id": job_id}, {"$set": {"expires": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    assert (await bulk.get(status)).status_code == 404
    assert (await bulk.get(url)).status_code == 404
    assert await bulk_app.state.export_jobs.sweep() >= 1
    assert not folder.exists()
    assert await bulk_app.state.mongo.db[JOBS].find_one({"_id": job_id}) is None


async def test_delete_cancels_an_export_and_its_status_is_then_404(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    status = await kick_off(bulk, params={"_type": "Patient"})
    r = await bulk.delete(status)
    assert r.status_code == 202
    assert (await bulk.get(status)).status_code == 404
    assert (await bulk.delete(status)).status_code == 404
    job_id = status.rsplit("/", 1)[1]
    await worker(bulk_app).run_pending()
    assert not bulk_app.state.export_jobs.job_folder(job_id).exists()


async def test_too_many_exports_at_once_for_one_client_is_429(
    bulk_app: FastAPI, bulk: httpx.AsyncClient, bulk_settings: Settings
) -> None:
    busy = await bearer(bulk_app, "system/*.*", client_id="busy-client", sub="busy-client")
    limit = bulk_settings.export_max_jobs_per_client
    statuses = [
        await kick_off(bulk, params={"_type": "Patient"}, headers={**KICK_OFF, **busy}) for _ in range(limit)
    ]
    r = await bulk.get("$export", params={"_type": "Patient"}, headers={**KICK_OFF, **busy})
    assert r.status_code == 429
    assert r.json()["resourceType"] == "OperationOutcome"
    assert int(r.headers["Retry-After"]) > 0
    # Another client is not held back; a cancelled job frees a place.
    other = await kick_off(bulk, params={"_type": "Patient"})
    assert (await bulk.delete(statuses[0], headers=busy)).status_code == 202
    statuses[0] = await kick_off(bulk, params={"_type": "Patient"}, headers={**KICK_OFF, **busy})
    for s in [*statuses, other]:
        await bulk.delete(s, headers=busy if s != other else None)


@pytest.mark.parametrize(
    ("headers", "params", "expression"),
    [
        ({"Prefer": "respond-async"}, {}, "Accept"),
        ({"Accept": "application/xml", "Prefer": "respond-async"}, {}, "Accept"),
        ({"Accept": "application/fhir+json"}, {}, "Prefer"),
        (KICK_OFF, {"_outputFormat": "text/csv"}, "_outputFormat"),
        (KICK_OFF, {"_since": "yesterday"}, "_since"),
        (KICK_OFF, {"_type": "Nonsense"}, "_type"),
        (KICK_OFF, {"_typeFilter": "Patient?nonsense=1", "_type": "Patient"}, "_typeFilter"),
        (KICK_OFF, {"_typeFilter": "Patient"}, "_typeFilter"),
        (KICK_OFF, {"_elements": "Patient.$where"}, "_elements"),
        (KICK_OFF, {"includeAssociatedData": "LatestProvenanceResources"}, "includeAssociatedData"),
        (KICK_OFF, {"organizeOutputBy": "Patient"}, "organizeOutputBy"),
    ],
)
async def test_a_bad_kick_off_is_400_naming_what_is_wrong_and_queues_nothing(
    bulk_app: FastAPI,
    bulk: httpx.AsyncClient,
    headers: dict[str, str],
    params: dict[str, str],
    expression: str,
) -> None:
    before = await bulk_app.state.mongo.db[JOBS].count_documents({})
    r = await bulk.get("$export", params=params, headers=headers)
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert expression in issue["expression"]
    assert await bulk_app.state.mongo.db[JOBS].count_documents({}) == before


async def test_lenient_handling_ignores_unsupported_parameters_and_says_so_in_the_error_file(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    status = await kick_off(
        bulk,
        params={"_type": "Patient", "organizeOutputBy": "Patient", "includeAssociatedData": "x"},
        headers={**KICK_OFF, "Prefer": "respond-async, handling=lenient"},
    )
    await worker(bulk_app).run_pending()
    manifest = (await bulk.get(status)).json()
    assert [o["type"] for o in manifest["output"]][:1] == ["Patient"]
    (outcome,) = await resources(bulk, manifest, "error")
    said = " ".join(i["diagnostics"] for i in outcome["issue"])
    assert "organizeOutputBy" in said and "includeAssociatedData" in said


async def test_kick_off_by_post_with_a_parameters_body(bulk_app: FastAPI, bulk: httpx.AsyncClient) -> None:
    pid = (await create(bulk, patient("Posted")))["id"]
    other = (await create(bulk, patient("NotPosted")))["id"]
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Patient"},
            {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
            {"name": "patient", "valueReference": {"reference": f"Patient/{pid}"}},
        ],
    }
    r = await bulk.post("Patient/$export", json=body, headers=KICK_OFF)
    assert r.status_code == 202, r.text
    await worker(bulk_app).run_pending()
    manifest = (await bulk.get(r.headers["Content-Location"])).json()
    assert [p["id"] for p in await resources(bulk, manifest)] == [pid]
    assert other != pid


async def test_group_export_gives_the_members_compartments_only(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    inside = (await create(bulk, patient("Member")))["id"]
    outside = (await create(bulk, patient("Outsider")))["id"]
    for pid in (inside, outside):
        await create(bulk, {"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{pid}"}})
    group = await create(
        bulk,
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{inside}"}}],
        },
    )
    manifest = await export(
        bulk_app, bulk, f"Group/{group['id']}/$export", {"_type": "Patient,AllergyIntolerance"}
    )
    found = by_type(await resources(bulk, manifest))
    assert [p["id"] for p in found["Patient"]] == [inside]
    assert [a["patient"]["reference"] for a in found["AllergyIntolerance"]] == [f"Patient/{inside}"]
    r = await bulk.get("Group/no-such-group/$export", headers=KICK_OFF)
    assert r.status_code == 404


async def test_patient_level_export_leaves_out_types_outside_the_compartment(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    await create(bulk, {"resourceType": "Organization", "name": "Clinique"})
    manifest = await export(bulk_app, bulk, "Patient/$export")
    types = {o["type"] for o in manifest["output"]}
    assert "Organization" not in types and "Patient" in types
    r = await bulk.get("Patient/$export", params={"_type": "Organization"}, headers=KICK_OFF)
    assert r.status_code == 400


async def test_a_resource_in_two_members_compartments_is_exported_once(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    a = (await create(bulk, patient("Twin")))["id"]
    b = (await create(bulk, patient("Twin")))["id"]
    members = [{"entity": {"reference": f"Patient/{p}"}} for p in (a, b)]
    group = await create(bulk, {"resourceType": "Group", "type": "person", "actual": True, "member": members})
    manifest = await export(bulk_app, bulk, f"Group/{group['id']}/$export", {"_type": "Patient,Group"})
    found = by_type(await resources(bulk, manifest))
    assert sorted(p["id"] for p in found["Patient"]) == sorted([a, b])
    assert [g["id"] for g in found["Group"]] == [group["id"]]
