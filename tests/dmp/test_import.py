"""Importing extracts: resources of open DMPs, staging of the others, the history a new DMP receives,
idempotence, the $import-reimbursements operation and the command line."""

from __future__ import annotations

import io
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from fhir_server.cli import main
from fhir_server.config import Settings
from fhir_server.dmp import systems
from fhir_server.dmp.feed import Feeder
from fhir_server.dmp.importer import ExtractImporter, ImportReport
from fhir_server.storage.client import Mongo
from tests.conftest import bearer
from tests.dmp.extracts import drug, extract, insured, line, new_nir
from tests.dmp.ins import closed, reopened


async def _import(app: FastAPI, text: str) -> ImportReport:
    services = app.state.services
    importer = ExtractImporter(services.repo, services.settings.terminology_dir, date.today(), batch_lines=3)
    return await importer.run(io.StringIO(text, newline=""), "test")


async def _open_dmp(client: httpx.AsyncClient, nir: str) -> str:
    r = await client.post("Patient", json=insured(nir))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _search(client: httpx.AsyncClient, query: str) -> list[dict[str, Any]]:
    r = await client.get(query)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


def _invoice() -> str:
    return f"T{uuid.uuid4().hex[:12]}"


async def test_lines_of_an_open_dmp_become_claims_eobs_and_statements(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    nir = new_nir()
    pid = await _open_dmp(client, nir)
    visit, pharmacy = _invoice(), _invoice()
    text = extract(
        line(nir, visit, 1, 40, "CCAM", "ZBQK002", "Radiographie du thorax", 1, ("21.28", "14.90", "6.38")),
        line(nir, visit, 2, 40, prescriber="10000000003"),
        drug(nir, pharmacy, 35),
        drug(nir, pharmacy, 35, n=2, cip="3400931267041"),
    )
    report = await _import(app, text)
    assert (report.lines, report.invoices, report.applied, report.rejected) == (4, 2, 4, [])
    eobs = await _search(
        client, f"ExplanationOfBenefit?patient={pid}&identifier={systems.CNAM_INVOICE}|{visit}"
    )
    assert len(eobs) == 1
    eob = eobs[0]
    assert eob["payment"]["amount"] == {"value": 33.9, "currency": "EUR"}
    first = eob["item"][0]
    assert first["productOrService"]["coding"][0]["system"] == systems.CCAM
    amounts = {a["category"]["coding"][0]["code"]: a["amount"]["value"] for a in first["adjudication"]}
    assert amounts == {"eligible": 21.28, "benefit": 14.9, "copay": 6.38}
    assert eob["insurance"][0]["coverage"]["reference"].startswith("Coverage/")
    roles = [m["role"]["coding"][0]["code"] for m in eob["careTeam"]]
    assert roles == ["performer", "prescriber"]
    claim = (await client.get(eob["claim"]["reference"])).json()
    assert claim["total"] == {"value": 51.28, "currency": "EUR"}
    prescriber = await _search(client, f"Practitioner?identifier={systems.RPPS}|10000000003")
    assert len(prescriber) == 1
    statements = await _search(client, f"MedicationStatement?subject=Patient/{pid}")
    assert len(statements) == 2
    pharmacy_eob = await _search(client, f"ExplanationOfBenefit?identifier={systems.CNAM_INVOICE}|{pharmacy}")
    assert {s["derivedFrom"][0]["reference"] for s in statements} == {
        f"ExplanationOfBenefit/{pharmacy_eob[0]['id']}"
    }


async def test_money_keeps_its_cents_in_the_database(
    app: FastAPI, client: httpx.AsyncClient, mongo: Mongo
) -> None:
    nir = new_nir()
    pid = await _open_dmp(client, nir)
    await _import(app, extract(line(nir, _invoice())))
    doc = await mongo.db["ExplanationOfBenefit"].find_one({"comp": pid})
    assert doc is not None
    assert doc["res"]["payment"]["amount"]["value"] == Decimal("19.00")
    assert str(doc["res"]["payment"]["amount"]["value"]) == "19.00"


async def test_importing_the_same_extract_again_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    nir = new_nir()
    pid = await _open_dmp(client, nir)
    text = extract(line(nir, _invoice()), drug(nir, _invoice(), 20), drug(nir, _invoice(), 5))
    first = await _import(app, text)
    assert first.written["ExplanationOfBenefit"] == 3
    again = await _import(app, text)
    assert sum(again.written.values()) == 0
    eobs = await _search(client, f"ExplanationOfBenefit?patient={pid}")
    assert len(eobs) == 3 and all(e["meta"]["versionId"] == "1" for e in eobs)


async def test_a_new_box_that_bridges_two_periods_merges_their_statements(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    nir = new_nir()
    pid = await _open_dmp(client, nir)
    await _import(app, extract(drug(nir, _invoice(), 200), drug(nir, _invoice(), 100)))
    assert len(await _search(client, f"MedicationStatement?subject=Patient/{pid}")) == 2
    await _import(app, extract(drug(nir, _invoice(), 150)))
    statements = await _search(client, f"MedicationStatement?subject=Patient/{pid}")
    assert len(statements) == 1 and len(statements[0]["derivedFrom"]) == 3


async def test_lines_wait_for_the_dmp_and_its_opening_brings_the_last_12_months(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    nir = new_nir(sex="2", year=91, month=11)
    recent, old = _invoice(), _invoice()
    report = await _import(app, extract(line(nir, recent, days_ago=300), line(nir, old, days_ago=400)))
    assert (report.applied, report.waiting, sum(report.written.values())) == (0, 2, 0)
    assert await _search(client, f"ExplanationOfBenefit?identifier={systems.CNAM_INVOICE}|{recent}") == []
    pid = await _open_dmp(client, nir)
    eobs = await _search(client, f"ExplanationOfBenefit?patient={pid}")
    assert [e["identifier"][0]["value"] for e in eobs] == [recent]
    # Later extracts for the open DMP are applied as they arrive.
    later = _invoice()
    await _import(app, extract(line(nir, later, days_ago=2)))
    assert len(await _search(client, f"ExplanationOfBenefit?patient={pid}")) == 2


async def test_the_operation_is_for_the_cnam_and_lists_rejected_lines(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    nir = new_nir()
    pid = await _open_dmp(client, nir)
    body = extract(line(nir, _invoice()), line(nir[:13] + "00", _invoice())).encode()
    csv = {"Content-Type": "text/csv"}
    refused = await client.post("$import-reimbursements", content=body, headers=csv)
    assert refused.status_code == 403
    cnam = {**csv, **(await bearer(app, "system/*.cruds", role="cnam"))}
    r = await client.post("$import-reimbursements", content=body, headers=cnam)
    assert r.status_code == 200, r.text
    issues = r.json()["issue"]
    assert issues[0]["severity"] == "information" and "1 rejected" in issues[0]["diagnostics"]
    assert issues[1]["severity"] == "error" and issues[1]["diagnostics"].startswith("line 3: nir:")
    assert len(await _search(client, f"ExplanationOfBenefit?patient={pid}")) == 1
    bad_header = await client.post("$import-reimbursements", content=b"a;b\n1;2\n", headers=cnam)
    assert bad_header.status_code == 400


async def test_the_cnam_posts_a_transaction_of_reimbursement_resources(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    pid = await _open_dmp(client, new_nir())
    cnam = await bearer(app, "system/*.cruds", role="cnam")
    bundle = _fhir_bundle(pid, "transaction", f"API{uuid.uuid4().hex[:8]}")
    r = await client.post("", json=bundle, headers=cnam)
    assert r.status_code == 200, r.text
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["201 Created"] * 3


async def test_a_collection_bundle_imported_twice_makes_no_duplicates(
    app: FastAPI,
    client: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
) -> None:
    pid = await _open_dmp(client, new_nir())
    invoice = f"COL{uuid.uuid4().hex[:8]}"
    path = tmp_path / "bundle.json"
    path.write_bytes(orjson.dumps(_fhir_bundle(pid, "collection", invoice)))
    monkeypatch.setenv("FHIR_MONGO_URI", settings.mongo_uri)
    monkeypatch.setenv("FHIR_MONGO_DB", settings.mongo_db)
    assert await _run_cli(["import-reimbursements", str(path)]) == 0
    assert await _run_cli(["import-reimbursements", "--format", "fhir", str(path)]) == 0
    found = await _search(client, f"ExplanationOfBenefit?identifier={systems.CNAM_INVOICE}|{invoice}")
    assert len(found) == 1 and found[0]["meta"]["versionId"] == "2"


async def test_the_command_imports_an_extract_and_writes_its_report(
    client: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nir = new_nir()
    pid = await _open_dmp(client, nir)
    path = tmp_path / "extract.csv"
    path.write_text(extract(line(nir, _invoice()), "bad;line"), encoding="utf-8")
    monkeypatch.setenv("FHIR_MONGO_URI", settings.mongo_uri)
    monkeypatch.setenv("FHIR_MONGO_DB", settings.mongo_db)
    assert await _run_cli(["import-reimbursements", str(path)]) == 0
    out = capsys.readouterr()
    assert "2 lines, 1 invoices, 1 imported" in out.out and "line 3:" in out.out
    assert "100%" in out.err
    report = orjson.loads((tmp_path / "extract.csv.report.json").read_bytes())
    assert report["rejected"][0]["line"] == 3 and report["resourcesByType"]["ExplanationOfBenefit"] == 1
    assert len(await _search(client, f"ExplanationOfBenefit?patient={pid}")) == 1


async def _run_cli(argv: list[str]) -> int:
    """The command in a thread of its own (it runs its own event loop)."""
    import asyncio

    return await asyncio.to_thread(main, argv)


def _fhir_bundle(pid: str, btype: str, invoice: str) -> dict[str, Any]:
    org, cov = "urn:uuid:" + str(uuid.uuid4()), "urn:uuid:" + str(uuid.uuid4())
    ident = [{"system": systems.CNAM_INVOICE, "value": invoice}]
    eob = {
        "resourceType": "ExplanationOfBenefit",
        "identifier": ident,
        "status": "active",
        "type": {"coding": [{"system": systems.CLAIM_TYPE, "code": "professional"}]},
        "use": "claim",
        "patient": {"reference": f"Patient/{pid}"},
        "created": "2026-01-05",
        "insurer": {"reference": org},
        "provider": {"reference": org},
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"reference": cov}}],
    }
    resources = [
        (org, {"resourceType": "Organization", "identifier": [{"system": systems.FINESS, "value": "750000099"}], "name": "CPAM"}),
        (cov, {"resourceType": "Coverage", "identifier": [{"system": systems.CNAM_INVOICE, "value": f"cov-{invoice}"}], "status": "active", "beneficiary": {"reference": f"Patient/{pid}"}, "payor": [{"reference": org}]}),
        (None, eob),
    ]  # fmt: skip
    entries = []
    for full, res in resources:
        entry: dict[str, Any] = {"resource": res}
        if full:
            entry["fullUrl"] = full
        if btype != "collection":
            entry["request"] = {"method": "POST", "url": res["resourceType"]}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": btype, "entry": entries}


async def test_a_corrected_line_gives_a_new_version_of_its_invoice(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    nir = new_nir()
    pid = await _open_dmp(client, nir)
    invoice = _invoice()
    await _import(app, extract(line(nir, invoice)))
    await _import(app, extract(line(nir, invoice, amounts=("30.00", "21.00", "9.00"))))
    [eob] = await _search(client, f"ExplanationOfBenefit?patient={pid}")
    assert eob["meta"]["versionId"] == "2"
    assert eob["payment"]["amount"]["value"] == 21


async def test_an_import_that_stopped_half_way_completes_when_run_again(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    nir = new_nir()
    pid = await _open_dmp(client, nir)
    text = extract(*(line(nir, f"{_invoice()}", days_ago=10 + i) for i in range(7)))
    real = Feeder.apply
    calls = {"n": 0}

    async def crash_on_third_batch(self: Feeder, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the process died")
        await real(self, *args)

    monkeypatch.setattr(Feeder, "apply", crash_on_third_batch)
    with pytest.raises(RuntimeError):
        await _import(app, text)
    # The two batches acknowledged before the crash (3 lines each) are there.
    assert len(await _search(client, f"ExplanationOfBenefit?patient={pid}")) == 6
    monkeypatch.setattr(Feeder, "apply", real)
    report = await _import(app, text)
    assert report.written["ExplanationOfBenefit"] == 1
    assert len(await _search(client, f"ExplanationOfBenefit?patient={pid}")) == 7


async def test_dmps_opened_in_bulk_receive_their_history_too(app: FastAPI, client: httpx.AsyncClient) -> None:
    nir = new_nir(sex="2")
    await _import(app, extract(line(nir, _invoice())))
    [record] = await app.state.services.resources.create_many([insured(nir)])
    assert len(await _search(client, f"ExplanationOfBenefit?patient={record.id}")) == 1


async def test_a_closed_dmp_receives_no_lines_until_it_is_reopened(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    nir = new_nir(sex="1")
    pid = await _open_dmp(client, nir)
    current = (await client.get(f"Patient/{pid}")).json()
    shut = await client.put(f"Patient/{pid}", json=closed(current))
    assert shut.status_code == 200, shut.text
    invoice = _invoice()
    report = await _import(app, extract(line(nir, invoice, days_ago=20)))
    assert (report.applied, report.waiting, sum(report.written.values())) == (0, 1, 0)
    assert await _search(client, f"ExplanationOfBenefit?patient={pid}") == []
    again = await client.put(f"Patient/{pid}", json=reopened(shut.json()))
    assert again.status_code == 200, again.text
    eobs = await _search(client, f"ExplanationOfBenefit?patient={pid}")
    assert [e["identifier"][0]["value"] for e in eobs] == [invoice]


async def test_a_patient_that_comes_to_carry_an_ins_receives_its_history(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    nir = new_nir(sex="2", year=85, month=3)
    invoice = _invoice()
    await _import(app, extract(line(nir, invoice, days_ago=40)))
    anonymous = {k: v for k, v in insured(nir).items() if k != "identifier"}
    r = await client.post("Patient", json=anonymous)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert await _search(client, f"ExplanationOfBenefit?patient={pid}") == []
    r = await client.put(f"Patient/{pid}", json={**insured(nir), "id": pid})
    assert r.status_code == 200, r.text
    eobs = await _search(client, f"ExplanationOfBenefit?patient={pid}")
    assert [e["identifier"][0]["value"] for e in eobs] == [invoice]
