"""Nothing outside the policy is returned or counted, whatever the interaction: a professional without
the patient's authorization, and one who may not see a masked document, probe every way in."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.policy.dmp import consent, create, document, ids, new_patient, new_practitioner, professional


@pytest.fixture(scope="module")
async def setup(app: FastAPI, client: httpx.AsyncClient) -> dict[str, Any]:
    doc = await new_practitioner(client, "10")
    pid = await new_patient(client, "Fuite")  # authorized the doctor
    hidden = await new_patient(client, "Cachée")  # did not
    await create(client, consent(pid, doc))
    shown = await create(client, document(pid, "11488-4"))
    masked = await create(client, document(pid, "34874-8", labels=("MASQUE_PS",)))
    other = await create(client, document(hidden, "11488-4"))
    # A second version of each, so that history has something to leak.
    for rid in (masked, other):
        current = (await client.get(f"DocumentReference/{rid}")).json()
        current["description"] = "v2"
        assert (await client.put(f"DocumentReference/{rid}", json=current)).status_code == 200
    return {
        "h": await professional(app, doc, "10"),
        "P": pid,
        "hidden": hidden,
        "shown": shown,
        "masked": masked,
        "other": other,
    }


def _all_ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if "resource" in e}


async def test_search_include_revinclude_chain_has_and_totals(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    h, forbidden = setup["h"], {setup["masked"], setup["other"], setup["hidden"]}
    probes = [
        ("DocumentReference", {"_total": "accurate"}),
        ("DocumentReference", {"subject:Patient.family": "cachee,fuite"}),
        ("DocumentReference", {"_include": "DocumentReference:subject"}),
        ("Patient", {"_revinclude": "DocumentReference:subject", "_id": f"{setup['P']},{setup['hidden']}"}),
        ("Patient", {"_has:DocumentReference:subject:type": "34874-8"}),
        ("Patient", {"_has:DocumentReference:subject:type": "11488-4"}),
        ("DocumentReference", {"_summary": "count", "type": "34874-8"}),
    ]
    for rtype, params in probes:
        r = await client.get(rtype, params=params, headers=h)
        assert r.status_code == 200, (params, r.text)
        bundle = r.json()
        assert not (_all_ids(bundle) & forbidden), params
        if "total" in bundle and rtype == "DocumentReference":
            assert bundle["total"] == len(
                [e for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
            ) or (params.get("_summary") == "count" and bundle["total"] == 0), params
    has_masked = await client.get(
        "Patient", params={"_has:DocumentReference:subject:type": "34874-8"}, headers=h
    )
    assert _all_ids(has_masked.json()) == set()  # the masked document does not reveal itself through _has


async def test_read_vread_and_history_at_every_level(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    h = setup["h"]
    for rid in (setup["masked"], setup["other"]):
        assert (await client.get(f"DocumentReference/{rid}", headers=h)).status_code == 403
        assert (await client.get(f"DocumentReference/{rid}/_history/1", headers=h)).status_code == 403
        assert (await client.get(f"DocumentReference/{rid}/_history", headers=h)).status_code == 403
    for path in ("DocumentReference/_history", "_history"):
        r = await client.get(path, params={"_count": "1000"}, headers=h)
        assert r.status_code == 200, r.text
        seen = {
            e["fullUrl"].rsplit("/", 3)[-3]
            if "/_history/" in e["fullUrl"]
            else e["fullUrl"].rsplit("/", 1)[-1]
            for e in r.json().get("entry", [])
        }
        assert setup["masked"] not in seen and setup["other"] not in seen and setup["hidden"] not in seen, (
            path
        )


async def test_batch_get_entries_and_system_search(client: httpx.AsyncClient, setup: dict[str, Any]) -> None:
    h = setup["h"]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"DocumentReference/{setup['masked']}"}},
            {"request": {"method": "GET", "url": f"Patient/{setup['hidden']}"}},
            {"request": {"method": "GET", "url": "DocumentReference?_count=100"}},
            {"request": {"method": "GET", "url": f"DocumentReference/{setup['shown']}"}},
        ],
    }
    r = await client.post("", json=batch, headers=h)
    entries = r.json()["entry"]
    assert [e["response"]["status"].split()[0] for e in entries] == ["403", "403", "200", "200"]
    assert ids(entries[2]["resource"]) & {setup["masked"], setup["other"]} == set()
    system = await client.get("", params={"_type": "DocumentReference,Patient", "_count": "1000"}, headers=h)
    assert _all_ids(system.json()) & {setup["masked"], setup["other"], setup["hidden"]} == set()


async def test_patient_operations(client: httpx.AsyncClient, setup: dict[str, Any]) -> None:
    h = setup["h"]
    forbidden = {setup["masked"], setup["other"], setup["hidden"]}
    for op in (
        "$everything",
        "$summary",
        "$prior-exams?code=https://smt.esante.gouv.fr/terminologie-ccam|ZCQM006",
    ):
        r = await client.get(f"Patient/{setup['P']}/{op}", headers=h)
        assert r.status_code == 200, (op, r.text)
        # Not an id, a reference or a narrative mention of what the doctor may not see. (The doctor's
        # own traces, part of the record, name what the earlier tests asked for and were refused.)
        kept = [
            e for e in r.json().get("entry", []) if e.get("resource", {}).get("resourceType") != "AuditEvent"
        ]
        text = orjson.dumps(kept).decode()
        assert not [rid for rid in forbidden if rid in text], op
        refused = await client.get(f"Patient/{setup['hidden']}/{op}", headers=h)
        assert refused.status_code == 403, (op, refused.text)
    shown = await client.get(f"Patient/{setup['P']}/$everything", headers=h)
    assert setup["shown"] in _all_ids(shown.json())
