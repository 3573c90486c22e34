"""Conditional create, update and delete (If-None-Exist, PUT/DELETE [type]?criteria)."""

from __future__ import annotations

import uuid

import httpx

from fhir_server.storage.client import Mongo
from tests.conftest import patient, snapshot

# A hospital identifier (IPP): these tests are about conditional semantics, duplicates included,
# which the INS (one DMP per INS, tests/dmp) would not allow.
INS = "https://hopital.example.fr/ipp"


def _ins() -> tuple[dict[str, str], str]:
    value = uuid.uuid4().hex[:13]
    return {"system": INS, "value": value}, f"identifier={INS}|{value}"


async def test_if_none_exist_returns_existing_instead_of_duplicate(client: httpx.AsyncClient) -> None:
    ident, criteria = _ins()
    first = await client.post(
        "Patient", json=patient(identifier=[ident]), headers={"If-None-Exist": criteria}
    )
    assert first.status_code == 201
    second = await client.post(
        "Patient", json=patient(identifier=[ident]), headers={"If-None-Exist": criteria}
    )
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    search = (await client.get("Patient", params={"identifier": f"{INS}|{ident['value']}"})).json()
    assert search["total"] == 1


async def test_if_none_exist_with_several_matches_is_412(client: httpx.AsyncClient) -> None:
    ident, criteria = _ins()
    for _ in range(2):
        await client.post("Patient", json=patient(identifier=[ident]))
    r = await client.post("Patient", json=patient(identifier=[ident]), headers={"If-None-Exist": criteria})
    assert r.status_code == 412


async def test_unsupported_criteria_are_400_not_match_all(client: httpx.AsyncClient, mongo: Mongo) -> None:
    await client.post("Patient", json=patient())
    before = await snapshot(mongo)
    for criteria in ["nonsense=1", "identifier:bogus=x", "_id=not valid id!"]:
        r = await client.post("Patient", json=patient(), headers={"If-None-Exist": criteria})
        assert r.status_code == 400, criteria
        assert r.json()["issue"][0]["expression"], criteria
        d = await client.delete("Patient", params=dict([criteria.split("=", 1)]))
        assert d.status_code == 400, criteria
    assert await snapshot(mongo) == before


async def test_conditional_update_creates_then_updates_the_match(client: httpx.AsyncClient) -> None:
    ident, criteria = _ins()
    r1 = await client.put(f"Patient?{criteria}", json=patient(identifier=[ident]))
    assert r1.status_code == 201
    r2 = await client.put(f"Patient?{criteria}", json=patient(identifier=[ident], gender="male"))
    assert r2.status_code == 200
    assert r2.json()["id"] == r1.json()["id"] and r2.json()["meta"]["versionId"] == "2"


async def test_conditional_update_with_several_matches_is_412(client: httpx.AsyncClient) -> None:
    ident, criteria = _ins()
    for _ in range(2):
        await client.post("Patient", json=patient(identifier=[ident]))
    assert (await client.put(f"Patient?{criteria}", json=patient(identifier=[ident]))).status_code == 412


async def test_conditional_delete(client: httpx.AsyncClient) -> None:
    ident, criteria = _ins()
    created = (await client.post("Patient", json=patient(identifier=[ident]))).json()
    r = await client.delete(f"Patient?{criteria}")
    assert r.status_code == 204
    assert (await client.get(f"Patient/{created['id']}")).status_code == 410
    # No match any more: success, nothing to do.
    assert (await client.delete(f"Patient?{criteria}")).status_code == 204


async def test_token_search_forms(client: httpx.AsyncClient) -> None:
    value = uuid.uuid4().hex
    created = (
        await client.post("Patient", json=patient(identifier=[{"system": INS, "value": value}]))
    ).json()
    nosys = (await client.post("Patient", json=patient(identifier=[{"value": value}]))).json()

    async def ids(q: str) -> set[str]:
        b = (await client.get(f"Patient?{q}")).json()
        return {e["resource"]["id"] for e in b.get("entry", [])}

    assert await ids(f"identifier={value}") == {created["id"], nosys["id"]}
    assert await ids(f"identifier={INS}|{value}") == {created["id"]}
    assert await ids(f"identifier=|{value}") == {nosys["id"]}
    assert created["id"] in await ids(f"identifier={INS}|")
    assert await ids(f"identifier={INS}|{value},other|x") == {created["id"]}
    assert await ids(f"_id={created['id']}&identifier={value}") == {created["id"]}
