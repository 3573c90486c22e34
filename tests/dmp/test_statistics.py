"""``GET [base]/$dmp-statistics``: operators' figures on DMPs, computed by the database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from fhir_server.operations.dmp_statistics import statistics_parameters
from tests.conftest import bearer
from tests.dmp.ins import closed, dmp_patient

Json = dict[str, Any]


def _param(params: Json, name: str) -> list[Json]:
    return [p for p in params["parameter"] if p["name"] == name]


def _parts(p: Json) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in p["part"]:
        value = next((v for k, v in part.items() if k.startswith("value")), part.get("part"))
        out.setdefault(part["name"], []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def _by_channel(params: Json) -> dict[str, dict[str, Any]]:
    return {_parts(p)["code"]["code"]: _parts(p) for p in _param(params, "channel")}


async def _document(client: httpx.AsyncClient, pid: str) -> None:
    r = await client.post(
        "DocumentReference",
        json={
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": {"reference": f"Patient/{pid}"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "Ym9uam91cg=="}}],
        },
    )
    assert r.status_code == 201, r.text


async def test_statistics_count_new_dmps_by_channel_month_closing_and_documents(
    client: httpx.AsyncClient,
) -> None:
    before = (await client.get("$dmp-statistics")).json()
    assert before["resourceType"] == "Parameters"
    new = {"pharmacie": 3, "cpam": 2, "etablissement": 1}
    pids = []
    for channel, n in new.items():
        for _ in range(n):
            pids.append((await client.post("Patient", json=dmp_patient(channel=channel))).json())
    for _ in range(3):
        await _document(client, pids[0]["id"])
    await _document(client, pids[1]["id"])
    assert (await client.put(f"Patient/{pids[2]['id']}", json=closed(pids[2]))).status_code == 200

    r = await client.get("$dmp-statistics")
    assert r.status_code == 200, r.text
    after = r.json()
    opened = _param(after, "opened")[0]["valueInteger"]
    assert opened == _param(before, "opened")[0]["valueInteger"] + 6
    assert _param(after, "closed")[0]["valueInteger"] == _param(before, "closed")[0]["valueInteger"] + 1
    was, now = _by_channel(before), _by_channel(after)
    for channel, n in new.items():
        assert now[channel]["opened"] == was.get(channel, {}).get("opened", 0) + n
    assert now["pharmacie"]["closed"] == was.get("pharmacie", {}).get("closed", 0) + 1
    assert abs(sum(Decimal(str(c["percent"])) for c in now.values()) - 100) <= Decimal("0.5")
    months = {_parts(m)["month"]: _parts(m) for m in _param(after, "month")}
    this_month = pids[0]["meta"]["lastUpdated"][:7]
    assert months[this_month]["opened"] >= 6
    docs = _parts(_param(after, "documentsPerDmp")[0])
    spread = {
        d[0]["valueInteger"]: d[1]["valueInteger"]
        for d in (
            x["part"] for x in _param(after, "documentsPerDmp")[0]["part"] if x["name"] == "distribution"
        )
    }
    assert spread.get(3, 0) >= 1 and sum(spread.values()) == opened
    assert docs["max"] >= 3


def test_shares_mean_and_median_from_grouped_rows() -> None:
    figures = {
        "channels": [
            {"_id": "cpam", "opened": 32, "closed": 2},
            {"_id": "patient-web", "opened": 19, "closed": 0},
            {"_id": "pharmacie", "opened": 31, "closed": 1},
            {"_id": "professionnel-sante", "opened": 18, "closed": 0},
        ],
        "months": [{"_id": {"month": "2025-06", "channel": "cpam"}, "opened": 32}],
        # 100 DMPs: 40 with one document, 10 with five, the other 50 with none.
        "documents": [{"_id": 1, "dmps": 40}, {"_id": 5, "dmps": 10}],
    }
    params = statistics_parameters(figures)
    shares = {code: c["percent"] for code, c in _by_channel(params).items()}
    assert shares == {
        "cpam": Decimal("32.0"),
        "patient-web": Decimal("19.0"),
        "pharmacie": Decimal("31.0"),
        "professionnel-sante": Decimal("18.0"),
    }
    assert _param(params, "closed")[0]["valueInteger"] == 3
    docs = _parts(_param(params, "documentsPerDmp")[0])
    assert docs["mean"] == Decimal("0.90") and docs["median"] == Decimal("0.5") and docs["max"] == 5


async def test_statistics_are_for_operators_only(client: httpx.AsyncClient, app: FastAPI) -> None:
    pid = (await client.post("Patient", json=dmp_patient())).json()["id"]
    refused = [
        await bearer(app, "patient/*.*", patient=pid, role="patient", fhirUser=f"Patient/{pid}"),
        await bearer(
            app, "user/*.*", role="practitioner", profession="10", fhirUser="Practitioner/stats-doctor"
        ),
        await bearer(app, "system/*.*", role="cnam"),
    ]
    for headers in refused:
        r = await client.get("$dmp-statistics", headers=headers)
        assert r.status_code == 403, r.text
    admin = await bearer(app, "user/*.*", role="admin")
    assert (await client.get("$dmp-statistics", headers=admin)).status_code == 200
    assert (await client.post("$dmp-statistics", json={"resourceType": "Parameters"})).status_code == 405


async def test_the_operation_is_advertised(client: httpx.AsyncClient) -> None:
    cap = (await client.get("metadata")).json()
    ops = cap["rest"][0].get("operation", [])
    assert {
        "name": "dmp-statistics",
        "definition": "https://dmp-fhir.org/OperationDefinition/dmp-statistics",
    }.items() <= next(o for o in ops if o["name"] == "dmp-statistics").items()
