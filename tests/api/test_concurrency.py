"""Concurrent writers over real HTTP (uvicorn on a free port): no lost update, ever."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import patient


async def test_concurrent_if_match_updates_exactly_one_wins(
    live_server: str, live_headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=live_server + "/", headers=live_headers, timeout=60) as c:
        for _ in range(5):
            created = (await c.post("Patient", json=patient())).json()
            pid = created["id"]
            bodies = [{**created, "gender": g} for g in ("male", "other")]
            results = await asyncio.gather(
                *(c.put(f"Patient/{pid}", json=b, headers={"If-Match": 'W/"1"'}) for b in bodies)
            )
            statuses = sorted(r.status_code for r in results)
            assert statuses == [200, 412], [r.text for r in results]
            winner = next(r for r in results if r.status_code == 200).json()
            current = (await c.get(f"Patient/{pid}")).json()
            assert current["meta"]["versionId"] == "2"
            assert current["gender"] == winner["gender"]
            history = (await c.get(f"Patient/{pid}/_history")).json()
            assert history["total"] == 2


async def test_concurrent_plain_updates_all_land_as_distinct_versions(
    live_server: str, live_headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=live_server + "/", headers=live_headers, timeout=60) as c:
        created = (await c.post("Patient", json=patient())).json()
        pid = created["id"]
        n = 8
        results = await asyncio.gather(
            *(c.put(f"Patient/{pid}", json={**created, "name": [{"family": f"Writer{i}"}]}) for i in range(n))
        )
        assert all(r.status_code == 200 for r in results), [r.text for r in results]
        versions = sorted(int(r.json()["meta"]["versionId"]) for r in results)
        assert versions == list(range(2, n + 2))
        history = (await c.get(f"Patient/{pid}/_history", params={"_count": 50})).json()
        assert history["total"] == n + 1
        families = {e["resource"]["name"][0].get("family") for e in history["entry"]}
        assert families >= {f"Writer{i}" for i in range(n)}
