"""The DMP's own search parameters, declared as SearchParameter resources, work like the R4 ones."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from fhir_server.search.registry import dmp_definitions

CCAM = "https://smt.esante.gouv.fr/terminologie-ccam"


def _eob(pid: str, code: str, serviced: str) -> dict[str, Any]:
    return {
        "resourceType": "ExplanationOfBenefit",
        "status": "active",
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{pid}"},
        "created": "2026-04-02T10:00:00Z",
        "insurer": {"display": "CPAM"},
        "provider": {"display": "Dr X"},
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"display": "AMO"}}],
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [{"system": CCAM, "code": code}]},
                "servicedDate": serviced,
            }
        ],
    }


async def test_act_and_care_date_find_reimbursed_exams(client: httpx.AsyncClient) -> None:
    pid = (await client.post("Patient", json={"resourceType": "Patient"})).json()["id"]
    code = "ZBQK" + uuid.uuid4().hex[:3].upper()
    made = []
    for c, day in ((code, "2026-03-10"), (code, "2025-01-20"), ("YYYY001", "2026-03-11")):
        r = await client.post("ExplanationOfBenefit", json=_eob(pid, c, day))
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])

    async def ids(**params: str) -> set[str]:
        bundle = (await client.get("ExplanationOfBenefit", params={"patient": pid, **params})).json()
        return {e["resource"]["id"] for e in bundle.get("entry", [])}

    assert await ids(act=f"{CCAM}|{code}") == {made[0], made[1]}
    assert await ids(act=code, **{"care-date": "ge2026-01-01"}) == {made[0]}
    assert await ids(**{"care-date": "2026-03"}) == {made[0], made[2]}
    assert await ids(act=f"http://other.example|{code}") == set()


async def test_capability_lists_them_with_their_definitions(client: httpx.AsyncClient) -> None:
    statement = (await client.get("metadata")).json()
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for rtype, params in dmp_definitions().items():
        listed = {p["name"]: p for p in by_type[rtype]["searchParam"]}
        for code, d in params.items():
            assert listed[code]["definition"] == d["url"]
            assert listed[code]["type"] == d["type"]
