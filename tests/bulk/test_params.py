"""Kick-off parameters: ``_since``, ``_until``, ``_type``, ``_typeFilter``, ``_elements``, ``patient``."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from fastapi import FastAPI

from tests.bulk.conftest import KICK_OFF, by_type, create, export, kick_off, resources, worker
from tests.conftest import patient


def _marker() -> str:
    return "M" + uuid.uuid4().hex[:10]


async def _pause() -> None:
    # lastUpdated has millisecond precision: keep consecutive writes apart.
    await asyncio.sleep(0.01)


async def test_since_gives_what_changed_after_it_and_lists_deletions(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    tag = _marker()
    old = await create(bulk, patient(tag))
    doomed = await create(bulk, patient(tag))
    await _pause()
    since = (
        old["meta"]["lastUpdated"]
        if old["meta"]["lastUpdated"] > doomed["meta"]["lastUpdated"]
        else doomed["meta"]["lastUpdated"]
    )
    await _pause()
    new = await create(bulk, patient(tag))
    assert (await bulk.delete(f"Patient/{doomed['id']}")).status_code in (200, 204)
    manifest = await export(
        bulk_app, bulk, params={"_since": since, "_typeFilter": f"Patient?family={tag}", "_type": "Patient"}
    )
    assert [p["id"] for p in await resources(bulk, manifest)] == [new["id"]]
    assert {d["type"] for d in manifest["deleted"]} == {"Bundle"}
    deletions = await resources(bulk, manifest, "deleted")
    entries = [e for b in deletions for e in b["entry"]]
    assert {"method": "DELETE", "url": f"Patient/{doomed['id']}"} in [e["request"] for e in entries]
    assert all(b["type"] == "transaction" for b in deletions)


async def test_until_leaves_out_what_changed_after_it(bulk_app: FastAPI, bulk: httpx.AsyncClient) -> None:
    tag = _marker()
    first = await create(bulk, patient(tag))
    await _pause()
    await create(bulk, patient(tag))
    until = first["meta"]["lastUpdated"]
    manifest = await export(
        bulk_app, bulk, params={"_until": until, "_typeFilter": f"Patient?family={tag}", "_type": "Patient"}
    )
    assert [p["id"] for p in await resources(bulk, manifest)] == [first["id"]]


async def test_type_filters_of_one_type_are_ored_and_other_types_are_untouched(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    a, b, c = _marker(), _marker(), _marker()
    pa = await create(bulk, patient(a))
    pb = await create(bulk, patient(b))
    await create(bulk, patient(c))
    allergy = await create(
        bulk, {"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{pa['id']}"}}
    )
    manifest = await export(
        bulk_app,
        bulk,
        params=[
            ("_type", "Patient,AllergyIntolerance"),
            ("_typeFilter", f"Patient?family={a}"),
            ("_typeFilter", f"Patient?family={b}"),
        ],
    )
    found = by_type(await resources(bulk, manifest))
    assert sorted(p["id"] for p in found["Patient"]) == sorted([pa["id"], pb["id"]])
    assert allergy["id"] in {x["id"] for x in found["AllergyIntolerance"]}


async def test_type_filter_and_patient_combine(bulk_app: FastAPI, bulk: httpx.AsyncClient) -> None:
    pid = (await create(bulk, patient(_marker())))["id"]
    other = (await create(bulk, patient(_marker())))["id"]
    mine = []
    for code in ("peanut", "pollen"):
        a = {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "urn:t", "code": code}]},
        }
        mine.append((await create(bulk, a))["id"])
    await create(
        bulk,
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{other}"},
            "code": {"coding": [{"system": "urn:t", "code": "peanut"}]},
        },
    )
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "AllergyIntolerance"},
            {"name": "_typeFilter", "valueString": "AllergyIntolerance?code=urn:t|peanut"},
            {"name": "patient", "valueReference": {"reference": f"Patient/{pid}"}},
        ],
    }
    r = await bulk.post("Patient/$export", json=body, headers=KICK_OFF)
    assert r.status_code == 202, r.text
    await worker(bulk_app).run_pending()
    manifest = (await bulk.get(r.headers["Content-Location"])).json()
    assert [a["id"] for a in await resources(bulk, manifest)] == [mine[0]]


async def test_elements_subset_the_named_type_and_tag_it(bulk_app: FastAPI, bulk: httpx.AsyncClient) -> None:
    tag = _marker()
    pid = (await create(bulk, patient(tag)))["id"]
    await create(
        bulk,
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{pid}"},
            "code": {"text": tag},
        },
    )
    manifest = await export(
        bulk_app,
        bulk,
        params={
            "_type": "Patient,AllergyIntolerance",
            "_elements": "Patient.birthDate",
            "_typeFilter": f"Patient?family={tag}",
        },
    )
    found = by_type(await resources(bulk, manifest))
    (p,) = found["Patient"]
    assert p["birthDate"] == "1980-04-12" and "name" not in p and "gender" not in p
    assert "SUBSETTED" in [t["code"] for t in p["meta"]["tag"]]
    allergy = next(a for a in found["AllergyIntolerance"] if a.get("code", {}).get("text") == tag)
    assert "tag" not in allergy.get("meta", {})


async def test_patient_parameter_is_refused_on_get_and_must_name_a_known_patient(
    bulk: httpx.AsyncClient,
) -> None:
    r = await bulk.get("Patient/$export", params={"patient": "Patient/x"}, headers=KICK_OFF)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["patient"]
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "patient", "valueReference": {"reference": "Patient/nobody-here"}}],
    }
    r = await bulk.post("Patient/$export", json=body, headers=KICK_OFF)
    assert r.status_code == 404


async def test_type_limits_the_output_to_the_listed_types(bulk_app: FastAPI, bulk: httpx.AsyncClient) -> None:
    await create(bulk, {"resourceType": "Organization", "name": "Centre"})
    manifest = await export(bulk_app, bulk, params={"_type": "Organization"})
    assert {o["type"] for o in manifest["output"]} == {"Organization"}
    assert all(r["resourceType"] == "Organization" for r in await resources(bulk, manifest))


async def test_decimals_are_exported_with_their_stored_digits(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    tag = _marker()
    body = b'{"resourceType": "Patient", "name": [{"family": "%s"}], "extension": [{"url": "urn:t", "valueDecimal": 105.00}]}'
    r = await bulk.post("Patient", content=body % tag.encode())
    assert r.status_code == 201, r.text
    status = await kick_off(bulk, params={"_type": "Patient", "_typeFilter": f"Patient?family={tag}"})
    await worker(bulk_app).run_pending()
    (item,) = (await bulk.get(status)).json()["output"]
    assert b'"valueDecimal":105.00' in (await bulk.get(item["url"])).content
