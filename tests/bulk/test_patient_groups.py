"""Patient and Group exports read their members a few at a time: each version once, whatever the
number of members, and a scan resumed at any recorded point gives exactly the rest."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from fhir_server.bulk.snapshot import PATIENTS_PER_SCAN, Snapshot
from tests.bulk.conftest import by_type, create, export, resources
from tests.conftest import patient

MEMBERS = 2 * PATIENTS_PER_SCAN + 4


def _group(pids: list[str]) -> dict[str, Any]:
    members = [{"entity": {"reference": f"Patient/{p}"}} for p in pids]
    return {"resourceType": "Group", "type": "person", "actual": True, "member": members}


async def _members(bulk: httpx.AsyncClient) -> tuple[list[str], dict[str, str]]:
    """Patients (sorted, as an export lists a Group's members), each with one allergy."""
    family = "Groupe" + uuid.uuid4().hex[:8]
    pids = sorted([(await create(bulk, patient(family)))["id"] for _ in range(MEMBERS)])
    allergies = {}
    for pid in pids:
        body = {"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{pid}"}}
        allergies[(await create(bulk, body))["id"]] = pid
    return pids, allergies


async def test_a_large_group_export_gives_every_member_resource_once(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    pids, allergies = await _members(bulk)
    everyone = await create(bulk, _group(pids))
    # In the compartments of a member of the second scan and of one of the third.
    pair = await create(bulk, _group([pids[PATIENTS_PER_SCAN + 1], pids[-1]]))
    manifest = await export(
        bulk_app, bulk, f"Group/{everyone['id']}/$export", {"_type": "Patient,AllergyIntolerance,Group"}
    )
    found = by_type(await resources(bulk, manifest))
    assert sorted(p["id"] for p in found["Patient"]) == pids
    assert sorted(a["id"] for a in found["AllergyIntolerance"]) == sorted(allergies)
    assert sorted(g["id"] for g in found["Group"]) == sorted([everyone["id"], pair["id"]])


async def test_a_group_scan_resumed_after_any_resource_gives_exactly_the_rest(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    pids, allergies = await _members(bulk)
    shared = await create(bulk, _group([pids[0], pids[PATIENTS_PER_SCAN], pids[-1]]))
    repo = bulk_app.state.services.repo
    snapshot = Snapshot(repo, datetime.now(UTC), None, None, pids, "bulk_scratch_test", batch_size=3)

    async def scan(rtype: str, after: str | None) -> list[tuple[str, str]]:
        return [(d["at"], d["id"]) async for b in snapshot.batches(rtype, None, None, after) for d in b]

    for rtype in ("AllergyIntolerance", "Group"):
        full = await scan(rtype, None)
        assert len({rid for _, rid in full}) == len(full)
        if rtype == "AllergyIntolerance":
            assert sorted(rid for _, rid in full) == sorted(allergies)
            # Read a few patients at a time: the resume points name each scan in turn.
            assert {at.split(" ")[0] for at, _ in full} == {"0", "1", "2"}
        else:
            assert full == [(f"0 Group/{shared['id']}/1", shared["id"])]
        for i, (at, _) in enumerate(full):
            assert await scan(rtype, at) == full[i + 1 :]


async def test_types_read_together_resume_each_after_its_own_point(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    pids, allergies = await _members(bulk)
    shared = await create(bulk, _group([pids[1], pids[PATIENTS_PER_SCAN], pids[-1]]))
    repo = bulk_app.state.services.repo
    snapshot = Snapshot(repo, datetime.now(UTC), None, None, pids, "bulk_scratch_test", batch_size=5)
    types = ("AllergyIntolerance", "Group", "Patient")

    async def scan(after: dict[str, str | None]) -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {t: [] for t in types}
        async for rtype, batch in snapshot.patient_batches({t: (None, after.get(t)) for t in types}):
            out[rtype] += [(d["at"], d["id"]) for d in batch]
        return out

    full = await scan({})
    assert sorted(rid for _, rid in full["AllergyIntolerance"]) == sorted(allergies)
    assert [rid for _, rid in full["Group"]] == [shared["id"]]
    assert sorted(rid for _, rid in full["Patient"]) == pids
    # A worker that died had recorded each type up to a different point: each goes on from its own.
    for cut in ((0, 0, 0), (3, 1, 17), (9, 0, 8), (20, 1, 1), (13, 1, 20)):
        after = {t: full[t][k - 1][0] if k else None for t, k in zip(types, cut, strict=True)}
        resumed = await scan(after)
        assert resumed == {t: full[t][k:] for t, k in zip(types, cut, strict=True)}


async def test_a_group_export_since_lists_the_members_deletions_only(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    pids, allergies = await _members(bulk)
    outsider = (await create(bulk, patient("Dehors")))["id"]
    theirs = await create(
        bulk, {"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{outsider}"}}
    )
    group = await create(bulk, _group(pids))
    since = group["meta"]["lastUpdated"]
    await asyncio.sleep(0.01)
    # Deleted after _since: an allergy of a member of each scan, and the outsider's.
    gone = [a for a, pid in allergies.items() if pid in (pids[0], pids[PATIENTS_PER_SCAN], pids[-1])]
    for rid in [*gone, theirs["id"]]:
        assert (await bulk.delete(f"AllergyIntolerance/{rid}")).status_code in (200, 204)
    manifest = await export(
        bulk_app, bulk, f"Group/{group['id']}/$export", {"_since": since, "_type": "AllergyIntolerance"}
    )
    assert await resources(bulk, manifest) == []
    deleted = [e["request"]["url"] for b in await resources(bulk, manifest, "deleted") for e in b["entry"]]
    assert sorted(deleted) == sorted(f"AllergyIntolerance/{rid}" for rid in gone)
