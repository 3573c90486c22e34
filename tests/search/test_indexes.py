"""Searches run on indexes: the common EHR queries and every advertised parameter avoid collection scans."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.search.engine import SearchEngine
from fhir_server.search.plan import choose_lead
from fhir_server.search.registry import SPECIAL, supported_params
from fhir_server.search.request import parse_search
from fhir_server.storage.client import Mongo
from fhir_server.storage.lead import pipeline
from tests.conftest import patient

SAMPLE = {
    "string": "dup",
    "token": "http://loinc.org|11488-4",
    "date": "ge2024-01-01",
    "number": "1",
    "quantity": "1",
    "reference": "Patient/p1",
    "uri": "http://example.org/a",
    "composite": "replaces$DocumentReference/p1",
}


def _stages(plan: Any) -> set[str]:
    """Every stage name in an explain plan tree."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "stage" in plan:
            found.add(plan["stage"])
        for value in plan.values():
            found |= _stages(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _stages(value)
    return found


async def _plan(app: FastAPI, mongo: Mongo, rtype: str, query: str) -> set[str]:
    engine: SearchEngine = app.state.services.engine
    params = [tuple(p.split("=", 1)) for p in query.split("&")]
    req = parse_search(rtype, params, default_count=10, max_count=10)  # type: ignore[arg-type]
    filt = await engine.filter_for(req)
    # Explain exactly what the engine runs: the filter led by the condition it chose.
    lead = choose_lead(rtype, filt)
    if lead is None:
        return {"NO LEAD"}
    stages = pipeline({**filt, "del": False}, lead, [("_id", 1)], 11)
    explained = await mongo.db.command("explain", {"aggregate": rtype, "pipeline": stages, "cursor": {}})
    return _stages(explained)


@pytest.fixture(scope="module", autouse=True)
async def some_data(client: httpx.AsyncClient) -> None:
    # A few documents, so that the planner has real index entries to choose between.
    for _ in range(3):
        assert (await client.post("Patient", json=patient(family="Dupond"))).status_code == 201


@pytest.mark.parametrize(
    ("rtype", "query"),
    [
        ("DocumentReference", "patient=p1&type=http://loinc.org|11488-4&date=ge2024-01-01&date=lt2025-01-01"),
        ("ExplanationOfBenefit", "patient=p1&created=ge2025-01-01"),
        ("Patient", "family=lef&birthdate=1980-04-12"),
        ("Patient", "given=hel&birthdate=1980-04-12"),
        ("AllergyIntolerance", "patient=p1"),
        ("MedicationStatement", "subject=Patient/p1"),
    ],
)
async def test_common_queries_use_an_index(app: FastAPI, mongo: Mongo, rtype: str, query: str) -> None:
    stages = await _plan(app, mongo, rtype, query)
    assert "COLLSCAN" not in stages and "IXSCAN" in stages, stages


async def test_every_advertised_parameter_is_index_backed(app: FastAPI, mongo: Mongo) -> None:
    scanned = []
    for rtype in (
        "Patient",
        "DocumentReference",
        "ExplanationOfBenefit",
        "AllergyIntolerance",
        "MedicationStatement",
        "Practitioner",
        "Organization",
        "Consent",
        "AuditEvent",
    ):
        for code, p in supported_params(rtype).items():
            if code in SPECIAL:
                continue
            stages = await _plan(app, mongo, rtype, f"{code}={SAMPLE[p.kind]}")
            if "COLLSCAN" in stages or "IXSCAN" not in stages:
                scanned.append(f"{rtype}.{code}")
    assert scanned == []
