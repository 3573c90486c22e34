"""``Patient/[id]/$everything``: the patient, its compartment and what it refers to, paged, within the
caller's policy."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fhir.resources.R4B import get_fhir_model_class

from tests.operations.care import CHEST_XRAY, GP_VISIT, days_ago, eob
from tests.policy.dmp import (
    consent,
    create,
    document,
    new_patient,
    new_practitioner,
    patient_user,
    professional,
)


@pytest.fixture(scope="module")
async def record(app: FastAPI, client: httpx.AsyncClient) -> dict[str, Any]:
    gp = await new_practitioner(client, "10")
    physio = await new_practitioner(client, "70")
    stranger = await new_practitioner(client, "10")
    pid = await new_patient(client, "Toutdedans", attending=gp)
    other = await new_patient(client, "Voisine")
    for who in (gp, physio):
        await create(client, consent(pid, who))
    org = await create(client, {"resourceType": "Organization", "name": "Cabinet de radiologie"})
    shown = await create(client, document(pid, "11488-4", author=f"Practitioner/{gp}"))
    masked = await create(client, document(pid, "34874-8", labels=("MASQUE_PS",)))
    bill = await create(client, eob(pid, f"Organization/{org}", days_ago(20), [CHEST_XRAY]))
    visit = await create(client, eob(pid, f"Practitioner/{gp}", days_ago(5), [GP_VISIT]))
    await create(client, document(other, "11488-4"))
    drug = await create(client, {"resourceType": "Medication", "code": {"text": "Metformine 850 mg"}})
    await create(
        client,
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": {"reference": f"Patient/{pid}"},
            "medicationReference": {"reference": f"Medication/{drug}"},
        },
    )
    return {
        "drug": drug,
        "pid": pid,
        "gp": gp,
        "org": org,
        "shown": shown,
        "masked": masked,
        "eobs": {bill, visit},
        "gp_h": await professional(app, gp, "10"),
        "physio_h": await professional(app, physio, "70"),
        "stranger_h": await professional(app, stranger, "10"),
        "patient_h": await patient_user(app, pid),
        "other_h": await patient_user(app, other),
    }


def _refs(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if mode is None or e["search"]["mode"] == mode
    }


async def _all_pages(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    pages = []
    while url:
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        url = next((link["url"] for link in pages[-1]["link"] if link["relation"] == "next"), "")
    return pages


async def test_everything_holds_the_patient_compartment_and_referenced_resources(
    client: httpx.AsyncClient, record: dict[str, Any]
) -> None:
    pid = record["pid"]
    r = await client.get(f"Patient/{pid}/$everything", params={"_count": "100"}, headers=record["gp_h"])
    assert r.status_code == 200, r.text
    assert not any(link["relation"] == "next" for link in r.json()["link"])
    bundle = r.json()
    assert bundle["type"] == "searchset"
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["entry"][0]["resource"]["id"] == pid
    matches = _refs(bundle, "match")
    assert f"DocumentReference/{record['shown']}" in matches
    assert {f"ExplanationOfBenefit/{e}" for e in record["eobs"]} <= matches
    included = _refs(bundle, "include")
    assert {
        f"Practitioner/{record['gp']}",
        f"Organization/{record['org']}",
        f"Medication/{record['drug']}",
    } <= included
    # The attending doctor sees the masked document; nobody else's resources appear.
    assert f"DocumentReference/{record['masked']}" in matches
    assert all(
        e["resource"].get("subject", e["resource"].get("patient", {"reference": f"Patient/{pid}"}))[
            "reference"
        ]
        == f"Patient/{pid}"
        for e in bundle["entry"]
        if e["resource"]["resourceType"] in {"DocumentReference", "ExplanationOfBenefit"}
    )


async def test_everything_leaves_out_what_the_policy_hides(
    client: httpx.AsyncClient, app: FastAPI, record: dict[str, Any]
) -> None:
    pid = record["pid"]
    # A physiotherapist may read neither consultation reports, masked documents nor reimbursements.
    everything = f"Patient/{pid}/$everything?_count=100"
    physio = (await client.get(everything, headers=record["physio_h"])).json()
    refs = _refs(physio)
    assert f"Patient/{pid}" in refs
    assert not any(r.startswith(("DocumentReference/", "ExplanationOfBenefit/")) for r in refs)
    # A patient sees the whole record, another patient nothing, a doctor without authorization nothing.
    own = (await client.get(everything, headers=record["patient_h"])).json()
    assert f"DocumentReference/{record['masked']}" in _refs(own)
    for headers in (record["other_h"], record["stranger_h"]):
        r = await client.get(f"Patient/{pid}/$everything", headers=headers)
        assert r.status_code == 403, r.text


async def test_everything_pages_with_count_and_keeps_each_resource_once(
    client: httpx.AsyncClient, record: dict[str, Any]
) -> None:
    pid = record["pid"]
    whole = _refs(
        (await client.get(f"Patient/{pid}/$everything?_count=100", headers=record["gp_h"])).json(), "match"
    )
    pages = await _all_pages(client, f"Patient/{pid}/$everything?_count=2", record["gp_h"])
    assert len(pages) >= 3
    seen: list[str] = []
    for page in pages:
        page_matches = [
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in page.get("entry", [])
            if e["search"]["mode"] == "match"
        ]
        assert len(page_matches) <= 2
        seen += page_matches
    assert len(seen) == len(set(seen))
    # Each call leaves a trace (AuditEvent) that later pages may show: compare the rest.
    assert {s for s in seen if not s.startswith("AuditEvent/")} == {
        w for w in whole if not w.startswith("AuditEvent/")
    }
    query = dict(parse_qsl(urlsplit(pages[0]["link"][0]["url"]).query))
    assert query["_count"] == "2"


async def test_everything_type_and_since(client: httpx.AsyncClient, record: dict[str, Any]) -> None:
    pid = record["pid"]
    r = await client.get(f"Patient/{pid}/$everything", params={"_type": "ExplanationOfBenefit,Organization"})
    refs = _refs(r.json())
    assert {f"ExplanationOfBenefit/{e}" for e in record["eobs"]} <= refs
    assert f"Organization/{record['org']}" in refs
    assert {ref.split("/")[0] for ref in refs} == {"ExplanationOfBenefit", "Organization"}
    patient = (await client.get(f"Patient/{pid}")).json()
    later = await client.get(
        f"Patient/{pid}/$everything",
        params={"_since": patient["meta"]["lastUpdated"], "_type": "Patient,ExplanationOfBenefit"},
    )
    assert f"Patient/{pid}" not in _refs(later.json())
    assert f"ExplanationOfBenefit/{sorted(record['eobs'])[0]}" in _refs(later.json())


async def test_everything_refuses_bad_parameters(client: httpx.AsyncClient, record: dict[str, Any]) -> None:
    pid = record["pid"]
    for params, name in (
        ({"_since": "yesterday"}, "_since"),
        ({"_type": "Observation"}, "_type"),
        ({"_type": "Practitioner"}, "_type"),
        ({"_count": "-1"}, "_count"),
        ({"start": "2024-01-01"}, "start"),
        ({"_cursor": "9.x"}, "_cursor"),
    ):
        r = await client.get(f"Patient/{pid}/$everything", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["issue"][0]["expression"] == [name], params
    assert (await client.get("Patient/nobody/$everything")).status_code == 404


async def test_everything_by_post(client: httpx.AsyncClient, record: dict[str, Any]) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "_type", "valueString": "ExplanationOfBenefit"}],
    }
    r = await client.post(f"Patient/{record['pid']}/$everything", json=body)
    assert r.status_code == 200, r.text
    assert {ref.split("/")[0] for ref in _refs(r.json(), "match")} == {"ExplanationOfBenefit"}
