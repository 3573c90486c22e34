"""Traces: every access leaves an AuditEvent the patient can read; traces are read-only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.policy.dmp import (
    consent,
    create,
    document,
    ids,
    new_patient,
    new_practitioner,
    patient_user,
    professional,
)


@pytest.fixture(scope="module")
async def care(client: httpx.AsyncClient) -> dict[str, Any]:
    doc = await new_practitioner(client, "10")
    other = await new_practitioner(client, "10")
    pid = await new_patient(client, "Traces")
    await create(client, consent(pid, doc))
    await create(client, consent(pid, other))
    report = await create(client, document(pid, "11488-4"))
    return {"doc": doc, "other": other, "P": pid, "report": report}


async def _traces(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = await client.get("AuditEvent", params={"_count": "200", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


async def test_reads_searches_writes_and_refusals_are_traced_for_the_patient(
    app: FastAPI, client: httpx.AsyncClient, care: dict[str, Any]
) -> None:
    h = await professional(app, care["doc"], "10")
    me = await patient_user(app, care["P"])
    who = f"Practitioner/{care['doc']}"
    before = len(await _traces(client, me, patient=care["P"], agent=who))
    assert (await client.get(f"DocumentReference/{care['report']}", headers=h)).status_code == 200
    assert (
        await client.get("DocumentReference", params={"patient": care["P"]}, headers=h)
    ).status_code == 200
    assert (
        await client.post(
            "AllergyIntolerance",
            json={
                "resourceType": "AllergyIntolerance",
                "patient": {"reference": f"Patient/{care['P']}"},
                "code": {"text": "arachide"},
            },
            headers=h,
        )
    ).status_code == 201
    assert (await client.get("Binary", headers=h)).status_code == 200
    events = await _traces(client, me, patient=care["P"], agent=who)
    assert len(events) == before + 3
    kinds = {(e["subtype"][0]["code"], e["action"], e["outcome"]) for e in events}
    assert {("read", "R", "0"), ("search-type", "E", "0"), ("create", "C", "0")} <= kinds
    read = next(e for e in events if e["subtype"][0]["code"] == "read")
    assert {"reference": f"DocumentReference/{care['report']}"} in [
        x["what"] for x in read["entity"] if "what" in x
    ]

    stranger = await new_practitioner(client, "10")
    sh = await professional(app, stranger, "10")
    assert (await client.get(f"Patient/{care['P']}", headers=sh)).status_code == 403
    refused = await _traces(client, me, patient=care["P"], agent=f"Practitioner/{stranger}")
    assert [e["outcome"] for e in refused] == ["4"]


async def test_a_professional_reads_only_their_own_traces(
    app: FastAPI, client: httpx.AsyncClient, care: dict[str, Any]
) -> None:
    h = await professional(app, care["doc"], "10")
    other = await professional(app, care["other"], "10")
    assert (await client.get(f"Patient/{care['P']}", headers=other)).status_code == 200
    mine = await _traces(client, h)
    assert mine and all(e["agent"][0]["who"]["reference"] == f"Practitioner/{care['doc']}" for e in mine)
    theirs = await _traces(client, h, agent=f"Practitioner/{care['other']}")
    assert theirs == []


async def test_traces_cannot_be_written_changed_or_deleted(
    client: httpx.AsyncClient, care: dict[str, Any]
) -> None:
    any_event = (await client.get("AuditEvent", params={"_count": "1"})).json()["entry"][0]["resource"]
    assert (await client.put(f"AuditEvent/{any_event['id']}", json=any_event)).status_code == 405
    assert (await client.delete(f"AuditEvent/{any_event['id']}")).status_code == 405
    forged = {k: v for k, v in any_event.items() if k not in {"id", "meta"}}
    r = await client.post("AuditEvent", json=forged)
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert (await client.get(f"AuditEvent/{any_event['id']}")).json() == any_event
    assert ids((await client.get("AuditEvent", params={"_id": any_event["id"]})).json()) == {any_event["id"]}
