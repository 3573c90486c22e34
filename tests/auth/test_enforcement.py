"""Scopes enforced on every FHIR interaction: a patient-A token never sees, counts or writes patient B."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import bearer, patient, snapshot

Json = dict[str, Any]
LOINC = "http://loinc.org"


def _doc(pid: str, code: str, tag: str) -> Json:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "date": "2026-03-01T10:00:00Z",
        "description": tag,
        "content": [{"attachment": {"contentType": "text/plain", "url": "Binary/x"}}],
    }


def _allergy(pid: str, code: str) -> Json:
    return {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
    }


async def _post(client: httpx.AsyncClient, resource: Json) -> Json:
    r = await client.post(resource["resourceType"], json=resource)
    assert r.status_code == 201, r.text
    body: Json = r.json()
    return body


@pytest.fixture(scope="module")
async def world(client: httpx.AsyncClient) -> Json:
    """Two patients with documents and allergies, a shared practitioner, a Binary."""
    tag = uuid.uuid4().hex[:10]
    a = await _post(client, patient(f"Alpha{tag}"))
    b = await _post(client, patient(f"Beta{tag}"))
    out: Json = {"tag": tag, "A": a["id"], "B": b["id"]}
    out["docA1"] = (await _post(client, _doc(a["id"], "11488-4", tag)))["id"]
    out["docA2"] = (await _post(client, _doc(a["id"], "18748-4", tag)))["id"]
    out["docB"] = (await _post(client, _doc(b["id"], "11488-4", tag)))["id"]
    out["allA"] = (await _post(client, _allergy(a["id"], f"1{tag[:5]}")))["id"]
    out["allB"] = (await _post(client, _allergy(b["id"], f"2{tag[:5]}")))["id"]
    prac = {"resourceType": "Practitioner", "name": [{"family": f"Prac{tag}"}]}
    out["prac"] = (await _post(client, prac))["id"]
    binary = {"resourceType": "Binary", "contentType": "text/plain", "data": "aGVsbG8="}
    out["bin"] = (await _post(client, binary))["id"]
    # B's document gets a second version, so that history has something to leak.
    r = await client.get(f"DocumentReference/{out['docB']}")
    await client.put(f"DocumentReference/{out['docB']}", json={**r.json(), "description": tag + " v2"})
    return out


@pytest.fixture(scope="module")
async def as_a(app: FastAPI, world: Json) -> httpx.AsyncClient:
    """Patient A's app: ``patient/*.rs`` with A as launch context."""
    return await _client(app, "launch/patient patient/*.rs", patient=world["A"])


async def _client(app: FastAPI, scope: str, **claims: Any) -> httpx.AsyncClient:
    headers = {"Content-Type": "application/fhir+json", **(await bearer(app, scope, **claims))}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test/fhir/", headers=headers
    )


def _ids(bundle: Json, rtype: str | None = None) -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if rtype is None or e["resource"]["resourceType"] == rtype
    }


def _forbidden(r: httpx.Response) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


# -- reads -------------------------------------------------------------------------------------------


async def test_patient_token_reads_its_patient_and_not_another(as_a: httpx.AsyncClient, world: Json) -> None:
    assert (await as_a.get(f"Patient/{world['A']}")).status_code == 200
    assert (await as_a.get(f"DocumentReference/{world['docA1']}")).status_code == 200
    for path in (
        f"Patient/{world['B']}",
        f"DocumentReference/{world['docB']}",
        f"DocumentReference/{world['docB']}/_history/1",
        f"DocumentReference/{world['docB']}/_history",
        f"AllergyIntolerance/{world['allB']}",
        f"Binary/{world['bin']}",
    ):
        r = await as_a.get(path)
        _forbidden(r)
        assert world["tag"] not in r.text


async def test_shared_reference_data_is_readable_in_patient_context(
    as_a: httpx.AsyncClient, world: Json
) -> None:
    assert (await as_a.get(f"Practitioner/{world['prac']}")).status_code == 200


# -- search ------------------------------------------------------------------------------------------


async def test_search_returns_and_counts_only_the_patient(as_a: httpx.AsyncClient, world: Json) -> None:
    bundle = (
        await as_a.get("DocumentReference", params={"description": world["tag"], "_total": "accurate"})
    ).json()
    assert _ids(bundle) == {world["docA1"], world["docA2"]}
    assert bundle["total"] == 2
    other = (await as_a.get("DocumentReference", params={"patient": world["B"], "_total": "accurate"})).json()
    assert other["total"] == 0 and "entry" not in other
    count = (
        await as_a.get("DocumentReference", params={"description": world["tag"], "_summary": "count"})
    ).json()
    assert count["total"] == 2


async def test_includes_chains_and_has_stay_in_the_compartment(as_a: httpx.AsyncClient, world: Json) -> None:
    tag = world["tag"]
    rev = (
        await as_a.get(
            "Patient",
            params={"family": f"Alpha{tag},Beta{tag}", "_revinclude": "AllergyIntolerance:patient"},
        )
    ).json()
    assert _ids(rev) == {world["A"], world["allA"]}
    inc = (
        await as_a.get(
            "AllergyIntolerance", params={"code": f"2{tag[:5]}", "_include": "AllergyIntolerance:patient"}
        )
    ).json()
    assert "entry" not in inc
    chain = (await as_a.get("DocumentReference", params={"subject:Patient.family": f"Beta{tag}"})).json()
    assert "entry" not in chain and chain["total"] == 0
    has = (await as_a.get("Patient", params={"_has:AllergyIntolerance:patient:code": f"2{tag[:5]}"})).json()
    assert "entry" not in has and has["total"] == 0
    # Including B's patient from A's documents is impossible; A's own subject comes back.
    own = (
        await as_a.get(
            "DocumentReference", params={"description": tag, "_include": "DocumentReference:subject"}
        )
    ).json()
    assert _ids(own, "Patient") == {world["A"]}


async def test_compartment_and_system_search(as_a: httpx.AsyncClient, world: Json) -> None:
    _forbidden(await as_a.get(f"Patient/{world['B']}/DocumentReference"))
    mine = (
        await as_a.get(f"Patient/{world['A']}/DocumentReference", params={"description": world["tag"]})
    ).json()
    assert _ids(mine) == {world["docA1"], world["docA2"]}
    system = (
        await as_a.get("", params={"_type": "DocumentReference,AllergyIntolerance", "_lastUpdated": "ge2000"})
    ).json()
    ids = _ids(system)
    assert {world["docA1"], world["allA"]} <= ids
    assert not ids & {world["docB"], world["allB"]}


# -- history -----------------------------------------------------------------------------------------


async def test_history_at_every_level_is_confined(as_a: httpx.AsyncClient, world: Json) -> None:
    for path in ("DocumentReference/_history", "_history"):
        bundle = (await as_a.get(path, params={"_count": "100"})).json()
        seen = {
            (e["resource"]["resourceType"], e["resource"]["id"])
            for e in bundle.get("entry", [])
            if "resource" in e
        }
        assert ("DocumentReference", world["docA1"]) in seen
        assert ("DocumentReference", world["docB"]) not in seen
        assert ("Patient", world["B"]) not in seen
        for e in bundle.get("entry", []):
            if "resource" in e and e["resource"]["resourceType"] not in {"Practitioner", "Organization"}:
                assert world["B"] not in str(e["resource"]), path


async def test_deleted_resources_stay_in_their_patients_history(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    a = await _post(client, patient("Gamma"))
    doc = await _post(client, _doc(a["id"], "11488-4", "to-delete"))
    assert (await client.delete(f"DocumentReference/{doc['id']}")).status_code == 204
    async with await _client(app, "patient/*.rs", patient=a["id"]) as c:
        h = (await c.get(f"DocumentReference/{doc['id']}/_history")).json()
        assert h["total"] == 2
        assert [e["request"]["method"] for e in h["entry"]] == ["DELETE", "POST"]
        assert (await c.get(f"DocumentReference/{doc['id']}")).status_code == 410
    async with await _client(app, "patient/*.rs", patient=str(uuid.uuid4())) as other:
        _forbidden(await other.get(f"DocumentReference/{doc['id']}/_history"))


# -- batch, transaction, writes ----------------------------------------------------------------------


async def test_batch_get_entries_are_checked_one_by_one(as_a: httpx.AsyncClient, world: Json) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{world['A']}"}},
            {"request": {"method": "GET", "url": f"Patient/{world['B']}"}},
            {"request": {"method": "GET", "url": f"DocumentReference?patient={world['B']}"}},
            {"request": {"method": "GET", "url": f"DocumentReference/{world['docB']}/_history"}},
        ],
    }
    r = await as_a.post("", json=batch)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["200", "403", "200", "403"]
    assert "entry" not in entries[2]["resource"]
    assert world["tag"] not in str(entries[1]) + str(entries[3])


async def test_patient_writes_stay_in_the_compartment(
    app: FastAPI, world: Json, client: httpx.AsyncClient, mongo: Any
) -> None:
    async with await _client(app, "patient/*.cruds", patient=world["A"]) as c:
        before = await snapshot(mongo)
        _forbidden(await c.post("DocumentReference", json=_doc(world["B"], "11488-4", "intruder")))
        current = (await c.get(f"DocumentReference/{world['docA1']}")).json()
        moved = {**current, "subject": {"reference": f"Patient/{world['B']}"}}
        _forbidden(await c.put(f"DocumentReference/{world['docA1']}", json=moved))
        _forbidden(await c.delete(f"DocumentReference/{world['docB']}"))
        patch = [{"op": "replace", "path": "/description", "value": "x"}]
        _forbidden(
            await c.patch(
                f"DocumentReference/{world['docB']}",
                json=patch,
                headers={"Content-Type": "application/json-patch+json"},
            )
        )
        tx = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "request": {"method": "POST", "url": "AllergyIntolerance"},
                    "resource": _allergy(world["A"], "1"),
                },
                {
                    "request": {"method": "POST", "url": "AllergyIntolerance"},
                    "resource": _allergy(world["B"], "2"),
                },
            ],
        }
        _forbidden(await c.post("", json=tx))
        assert await snapshot(mongo) == before
        created = await c.post("DocumentReference", json=_doc(world["A"], "11488-4", "own"))
        assert created.status_code == 201, created.text


async def test_read_only_scopes_cannot_write(as_a: httpx.AsyncClient, world: Json) -> None:
    _forbidden(await as_a.post("DocumentReference", json=_doc(world["A"], "11488-4", "x")))
    current = (await as_a.get(f"Patient/{world['A']}")).json()
    _forbidden(await as_a.put(f"Patient/{world['A']}", json=current))
    _forbidden(await as_a.delete(f"Patient/{world['A']}"))


# -- scope syntaxes ----------------------------------------------------------------------------------


async def test_v2_query_scope_narrows_like_a_search(app: FastAPI, world: Json) -> None:
    scope = f"patient/DocumentReference.rs?type={LOINC}|11488-4"
    async with await _client(app, scope, patient=world["A"]) as c:
        bundle = (await c.get("DocumentReference", params={"description": world["tag"]})).json()
        assert _ids(bundle) == {world["docA1"]}
        assert bundle["total"] == 1
        assert (await c.get(f"DocumentReference/{world['docA1']}")).status_code == 200
        _forbidden(await c.get(f"DocumentReference/{world['docA2']}"))
        _forbidden(await c.get(f"AllergyIntolerance/{world['allA']}"))
        _forbidden(await c.get("DocumentReference/_history"))


async def test_v1_scopes(app: FastAPI, world: Json) -> None:
    async with await _client(app, "patient/*.read", patient=world["A"]) as c:
        assert (await c.get(f"DocumentReference/{world['docA1']}")).status_code == 200
        _forbidden(await c.get(f"DocumentReference/{world['docB']}"))
        _forbidden(await c.post("AllergyIntolerance", json=_allergy(world["A"], "3")))
    async with await _client(app, "user/DocumentReference.write") as c:
        _forbidden(await c.get(f"DocumentReference/{world['docB']}"))
        _forbidden(await c.get("DocumentReference"))
        assert (await c.post("DocumentReference", json=_doc(world["B"], "11488-4", "w"))).status_code == 201
    async with await _client(app, "user/Patient.read") as c:
        assert (await c.get(f"Patient/{world['B']}")).status_code == 200
        _forbidden(await c.get(f"DocumentReference/{world['docB']}"))


async def test_patient_scope_without_patient_context_sees_nothing(app: FastAPI, world: Json) -> None:
    async with await _client(app, "patient/*.rs") as c:
        _forbidden(await c.get(f"Patient/{world['A']}"))
        _forbidden(await c.get("DocumentReference"))
