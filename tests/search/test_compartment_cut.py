"""A policy's list of patients cut to the query's patient finds exactly what the whole list finds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.search.engine import SearchEngine
from fhir_server.search.request import parse_search
from fhir_server.storage.client import Mongo
from tests.conftest import patient

_FILLERS = [f"filler-{i}" for i in range(300)]


@pytest.fixture(scope="module")
async def people(client: httpx.AsyncClient) -> dict[str, str]:
    ids = {}
    for name in ("Alpha", "Bravo", "Charlie"):
        r = await client.post("Patient", json=patient(family=name))
        assert r.status_code == 201
        ids[name] = r.json()["id"]
    a, b = f"Patient/{ids['Alpha']}", f"Patient/{ids['Bravo']}"
    docs: list[dict[str, Any]] = [
        {"subject": {"reference": a}},
        # About Alpha, written by Bravo: in both compartments.
        {"subject": {"reference": a}, "author": [{"reference": b}]},
        {"subject": {"reference": b}},
    ]
    for extra in docs:
        doc = {
            "resourceType": "DocumentReference",
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
            "content": [{"attachment": {"contentType": "text/plain", "url": "urn:x"}}],
            **extra,
        }
        assert (await client.post("DocumentReference", json=doc)).status_code == 201
    return ids


async def _both(app: FastAPI, mongo: Mongo, query: str, allowed: list[str]) -> tuple[list[str], list[str]]:
    """The engine's matches (the list cut), and the database's for the whole uncut filter."""
    engine: SearchEngine = app.state.services.engine
    params = [tuple(p.split("=", 1)) for p in query.split("&")]
    req = parse_search("DocumentReference", params, default_count=50, max_count=50)  # type: ignore[arg-type]

    def restrict(rtype: str) -> dict[str, Any]:
        return {"comp": {"$in": allowed}}

    result = await engine.search(req, restrict)
    compiled = await engine.filter_for(req)
    plain = {"$and": [compiled, {"comp": {"$in": allowed}}], "del": False}
    expected = sorted([d["_id"] async for d in mongo.db["DocumentReference"].find(plain, {"_id": 1})])
    assert result.total == len(expected)
    return sorted(r.id for r in result.matches), expected


@pytest.mark.parametrize(
    ("query", "allowed"),
    [
        ("patient={Alpha}", ["Alpha", "Bravo"]),
        ("patient={Alpha}", ["Alpha"]),
        ("patient={Alpha}", ["Bravo"]),  # Alpha not listed: the co-authored document only
        ("patient={Alpha}", ["Charlie"]),
        ("patient={Alpha}&author=Patient/{Bravo}", ["Alpha"]),
        ("subject=Patient/{Bravo}", ["Alpha", "Bravo"]),
    ],
)
async def test_cut_list_finds_what_the_whole_list_finds(
    app: FastAPI, mongo: Mongo, people: dict[str, str], query: str, allowed: list[str]
) -> None:
    got, expected = await _both(app, mongo, query.format(**people), [people[n] for n in allowed] + _FILLERS)
    assert got == expected
    assert got or allowed == ["Charlie"]
