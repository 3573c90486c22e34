"""Create, read, vread, update, patch, delete: statuses, headers and versions as the R4 spec sets them."""

from __future__ import annotations

import httpx

from tests.conftest import BASE, patient


async def _create(client: httpx.AsyncClient, **extra: object) -> dict:
    r = await client.post("Patient", json=patient(**extra))
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_assigns_id_version_and_location(client: httpx.AsyncClient) -> None:
    r = await client.post("Patient", json=patient(id="client-chosen"))
    assert r.status_code == 201
    body = r.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert r.headers["location"] == f"{BASE}/Patient/{body['id']}/_history/1"
    assert r.headers["etag"] == 'W/"1"'
    assert "last-modified" in r.headers
    assert r.headers["content-type"].startswith("application/fhir+json")


async def test_read_returns_what_was_created(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.headers["etag"] == 'W/"1"'


async def test_read_unknown_is_404_with_outcome(client: httpx.AsyncClient) -> None:
    r = await client.get("Patient/does-not-exist")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_unserved_type_is_404_with_outcome(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "Observation/1"), ("POST", "Observation"), ("GET", "Observation")]:
        r = await client.request(method, path, json={"resourceType": "Observation"})
        assert r.status_code == 404, (method, path)
        assert r.json()["issue"][0]["code"] == "not-supported"


async def test_update_increments_version_and_keeps_history(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    pid = created["id"]
    changed = {**created, "gender": "other"}
    r = await client.put(f"Patient/{pid}", json=changed)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    v1 = await client.get(f"Patient/{pid}/_history/1")
    assert v1.status_code == 200 and v1.json()["gender"] == "female"
    v2 = await client.get(f"Patient/{pid}/_history/2")
    assert v2.json()["gender"] == "other"
    assert (await client.get(f"Patient/{pid}/_history/3")).status_code == 404


async def test_update_as_create_uses_client_id(client: httpx.AsyncClient) -> None:
    r = await client.put("Patient/chosen-by-client-1", json=patient(id="chosen-by-client-1"))
    assert r.status_code == 201
    assert r.headers["location"].endswith("/Patient/chosen-by-client-1/_history/1")
    again = await client.put("Patient/chosen-by-client-1", json=patient(id="chosen-by-client-1"))
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == "2"


async def test_if_match_stale_version_is_412_and_current_is_kept(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    pid = created["id"]
    ok = await client.put(f"Patient/{pid}", json={**created, "gender": "male"}, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200
    stale = await client.put(
        f"Patient/{pid}", json={**created, "gender": "other"}, headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert (await client.get(f"Patient/{pid}")).json()["gender"] == "male"


async def test_if_none_match_on_read_gives_304(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    r = await client.get(f"Patient/{created['id']}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304
    r2 = await client.get(f"Patient/{created['id']}", headers={"If-None-Match": 'W/"7"'})
    assert r2.status_code == 200


async def test_put_if_none_match_star_refuses_existing(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    r = await client.put(f"Patient/{created['id']}", json=created, headers={"If-None-Match": "*"})
    assert r.status_code == 412


async def test_delete_then_read_is_410_and_history_has_tombstone(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    pid = created["id"]
    r = await client.delete(f"Patient/{pid}")
    assert r.status_code == 204
    assert r.headers["etag"] == 'W/"2"'
    assert (await client.get(f"Patient/{pid}")).status_code == 410
    again = await client.delete(f"Patient/{pid}")
    assert again.status_code == 204 and again.headers["etag"] == 'W/"2"'
    hist = (await client.get(f"Patient/{pid}/_history")).json()
    assert [e["request"]["method"] for e in hist["entry"]] == ["DELETE", "POST"]
    assert "resource" not in hist["entry"][0]
    assert (await client.get(f"Patient/{pid}/_history/2")).status_code == 410
    assert (await client.get(f"Patient/{pid}/_history/1")).status_code == 200
    # Re-creating a deleted resource continues its version sequence.
    back = await client.put(f"Patient/{pid}", json={**created})
    assert back.status_code == 201 and back.json()["meta"]["versionId"] == "3"


async def test_delete_unknown_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.delete("Patient/never-there")).status_code == 404


async def test_prefer_return_minimal_and_operation_outcome(client: httpx.AsyncClient) -> None:
    r = await client.post("Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and "location" in r.headers
    r2 = await client.post("Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert r2.status_code == 201 and r2.json()["resourceType"] == "OperationOutcome"


async def test_json_patch_updates_and_validates(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    pid = created["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    r = await client.patch(
        f"Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "male" and r.json()["meta"]["versionId"] == "2"
    bad = [{"op": "replace", "path": "/gender", "value": "not-a-gender"}]
    r2 = await client.patch(
        f"Patient/{pid}", json=bad, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r2.status_code == 422
    failing_test = [{"op": "test", "path": "/gender", "value": "female"}]
    r3 = await client.patch(
        f"Patient/{pid}", json=failing_test, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r3.status_code == 422
    wrong_media = await client.patch(f"Patient/{pid}", json=ops)
    assert wrong_media.status_code == 415
    assert (await client.get(f"Patient/{pid}")).json()["meta"]["versionId"] == "2"


async def test_history_type_and_system_levels_page_with_next_links(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post(
            "Practitioner", json={"resourceType": "Practitioner", "name": [{"family": "Martin"}]}
        )
    page1 = (await client.get("Practitioner/_history", params={"_count": 2})).json()
    assert page1["type"] == "history" and len(page1["entry"]) == 2
    nxt = next(link["url"] for link in page1["link"] if link["relation"] == "next")
    page2 = (await client.get(nxt)).json()
    ids1 = {e["fullUrl"] for e in page1["entry"]}
    assert ids1.isdisjoint({e["fullUrl"] for e in page2["entry"]})
    system = (await client.get("_history", params={"_count": 5})).json()
    assert len(system["entry"]) == 5


async def test_history_since_and_at(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    pid = created["id"]
    v1_time = created["meta"]["lastUpdated"]
    updated = (await client.put(f"Patient/{pid}", json={**created, "gender": "male"})).json()
    since = (
        await client.get(f"Patient/{pid}/_history", params={"_since": updated["meta"]["lastUpdated"]})
    ).json()
    assert [e["resource"]["meta"]["versionId"] for e in since["entry"]] == ["2"]
    at = (await client.get(f"Patient/{pid}/_history", params={"_at": v1_time})).json()
    assert [e["resource"]["meta"]["versionId"] for e in at["entry"]] == ["1"]
    bad = await client.get(f"Patient/{pid}/_history", params={"_since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["_since"]
