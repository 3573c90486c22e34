"""``fhir-server demo-data``: deterministic, valid, consistent synthetic French DMP data."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.cli import main
from fhir_server.config import Settings
from fhir_server.dmp.demo import DemoOptions, generate
from fhir_server.dmp.demo_output import write_demo
from fhir_server.dmp.nir import parse_nir
from fhir_server.fhir.validation import validate_resource

AS_OF = date(2025, 6, 15)
INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
RPPS = "urn:oid:1.2.250.1.71.4.2.1"
FINESS = "urn:oid:1.2.250.1.71.4.2.2"
CHANNEL_URL = "https://dmp-fhir.org/StructureDefinition/dmp-creation-channel"
VISIBILITY = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
)
CLASS = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
# DOMAIN.md, "The flat extract format", written out independently of the code.
EXTRACT_COLUMNS = [
    "nir", "invoice_id", "line_no", "care_date", "payment_date", "prescriber_rpps", "performer_id",
    "performer_kind", "code_system", "code", "label", "quantity", "base_amount", "reimbursed_amount",
    "patient_share",
]  # fmt: skip

Json = dict[str, Any]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Json], list[dict[str, str]]]:
    """200 patients written with ``--out``: every resource of the bundles, and the extract's rows."""
    out = tmp_path_factory.mktemp("demo")
    assert (
        main(
            ["demo-data", "--patients", "200", "--seed", "7", "--as-of", AS_OF.isoformat(), "--out", str(out)]
        )
        == 0
    )
    resources = [
        entry["resource"]
        for line in (out / "bundles.ndjson").read_bytes().splitlines()
        for entry in orjson.loads(line)["entry"]
    ]
    with (out / "reimbursements.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=";")
        assert reader.fieldnames == EXTRACT_COLUMNS
        rows = list(reader)
    return resources, rows


def _of(resources: list[Json], rtype: str) -> list[Json]:
    return [r for r in resources if r["resourceType"] == rtype]


def test_same_seed_and_date_give_the_same_bytes(tmp_path: Path) -> None:
    options = DemoOptions(patients=12, seed=3, as_of=AS_OF)
    write_demo(options, tmp_path / "a")
    write_demo(options, tmp_path / "b")
    write_demo(DemoOptions(patients=12, seed=4, as_of=AS_OF), tmp_path / "c")
    for name in ("bundles.ndjson", "reimbursements.csv", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "bundles.ndjson").read_bytes() != (
        tmp_path / "c" / "bundles.ndjson"
    ).read_bytes()


def test_a_patient_does_not_change_when_more_patients_are_generated() -> None:
    def patients(n: int) -> list[Json]:
        chunks = generate(DemoOptions(patients=n, seed=5, as_of=AS_OF))
        return [
            e["resource"]
            for c in chunks
            for e in c.bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        ]

    few, more = patients(3), patients(60)
    # The shared pools grow with the number of patients (one city, then two), so only the identity is
    # compared.
    assert [(p["identifier"], p["name"], p["birthDate"]) for p in few] == [
        (p["identifier"], p["name"], p["birthDate"]) for p in more[:3]
    ]


def test_every_nir_is_valid_unique_and_consistent_with_the_patient(data: tuple[list[Json], Any]) -> None:
    patients = _of(data[0], "Patient")
    assert len(patients) == 200
    nirs = []
    for p in patients:
        [ins] = [i["value"] for i in p["identifier"] if i["system"] == INS_NIR]
        nir = parse_nir(ins)
        assert nir.mismatches(p["gender"], p["birthDate"]) == [], p["id"]
        [birth_place] = [e["valueAddress"] for e in p["extension"] if e["url"].endswith("patient-birthPlace")]
        assert (ins[5:7] == "99") == ("city" not in birth_place)  # born abroad: département 99
        nirs.append(ins)
    assert len(set(nirs)) == len(nirs)
    departments = Counter(n[5:7] for n in nirs)
    assert departments["2A"] + departments["2B"] > 0, "no birth in Corsica"
    assert departments["97"] > 0, "no birth overseas"
    assert any(
        any(ch in p["name"][0]["family"] + p["name"][0]["given"][0] for ch in "éèçïëô") for p in patients
    )


def test_creation_channels_follow_the_published_shares(data: tuple[list[Json], Any]) -> None:
    codes = Counter(
        e["valueCoding"]["code"]
        for p in _of(data[0], "Patient")
        for e in p["extension"]
        if e["url"] == CHANNEL_URL
    )
    assert sum(codes.values()) == 200
    shares = {"patient-web": 19, "pharmacie": 31, "cpam": 32, "professionnel-sante": 18}
    for code, share in shares.items():
        assert abs(codes[code] / 2 - share) <= 3, (code, codes[code])


def test_professionals_have_rpps_profession_and_some_a_specialty(data: tuple[list[Json], Any]) -> None:
    resources = data[0]
    practitioners = _of(resources, "Practitioner")
    specialties = set()
    for p in practitioners:
        [rpps] = [i["value"] for i in p["identifier"] if i["system"] == RPPS]
        assert len(rpps) == 11 and rpps.isdigit()
        systems = [c["system"] for q in p["qualification"] for c in q["code"]["coding"]]
        assert systems[0].endswith("TRE-G15-ProfessionSante")
        specialties.update(c["code"] for q in p["qualification"][1:] for c in q["code"]["coding"])
    assert "SM25" in specialties  # occupational medicine
    ids = {f"Practitioner/{p['id']}" for p in practitioners}
    assert all(p["generalPractitioner"][0]["reference"] in ids for p in _of(resources, "Patient"))
    roles = _of(resources, "PractitionerRole")
    assert {r["practitioner"]["reference"] for r in roles} == ids
    for org in _of(resources, "Organization"):
        [finess] = [i["value"] for i in org["identifier"] if i["system"] == FINESS]
        assert len(finess) == 9


def test_documents_have_a_class_following_their_type_and_a_matching_binary(
    data: tuple[list[Json], Any],
) -> None:
    resources = data[0]
    binaries = {f"Binary/{b['id']}": b for b in _of(resources, "Binary")}
    classes: dict[str, set[str]] = {}
    labels = Counter()
    for doc in _of(resources, "DocumentReference"):
        [type_code] = [c["code"] for c in doc["type"]["coding"] if c["system"] == "http://loinc.org"]
        [category] = [c["code"] for c in doc["category"][0]["coding"] if c["system"] == CLASS]
        classes.setdefault(type_code, set()).add(category)
        codes = {s["code"] for s in doc.get("meta", {}).get("security", []) if s["system"] == VISIBILITY}
        assert not {"MASQUE_PS", "INVISIBLE_PATIENT"} <= codes
        labels.update(codes)
        attachment = doc["content"][0]["attachment"]
        content = base64.b64decode(binaries[attachment["url"]]["data"])
        assert attachment["size"] == len(content)
        assert attachment["hash"] == base64.b64encode(hashlib.sha1(content).digest()).decode()
        start = b"%PDF-" if attachment["contentType"] == "application/pdf" else b"<?xml"
        assert content.startswith(start)
    assert all(len(c) == 1 for c in classes.values()), classes
    assert classes["18748-4"] == {"31"} and classes["57833-6"] == {"42"} and classes["11488-4"] == {"10"}
    assert len(classes) >= 12
    assert labels["MASQUE_PS"] > 0


def test_extract_amounts_add_up_and_point_at_known_people(
    data: tuple[list[Json], list[dict[str, str]]],
) -> None:
    resources, rows = data
    nirs = {i["value"] for p in _of(resources, "Patient") for i in p["identifier"]}
    rpps = {i["value"] for p in _of(resources, "Practitioner") for i in p["identifier"]}
    finess = {i["value"] for o in _of(resources, "Organization") for i in o["identifier"]}
    invoices: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        assert Decimal(row["base_amount"]) == Decimal(row["reimbursed_amount"]) + Decimal(
            row["patient_share"]
        )
        assert Decimal(row["reimbursed_amount"]) >= 0 and Decimal(row["patient_share"]) >= 0
        assert row["nir"] in nirs
        assert row["performer_id"] in (rpps if row["performer_kind"] == "PS" else finess)
        assert row["prescriber_rpps"] == "" or row["prescriber_rpps"] in rpps
        assert row["code_system"] in {"CCAM", "NGAP", "NABM", "CIP13", "UCD", "LPP"}
        care, paid = date.fromisoformat(row["care_date"]), date.fromisoformat(row["payment_date"])
        assert AS_OF - timedelta(days=366) <= care <= paid <= AS_OF
        invoices.setdefault(row["invoice_id"], []).append(row)
    for lines in invoices.values():
        assert [int(r["line_no"]) for r in lines] == list(range(1, len(lines) + 1))
        assert len({(r["nir"], r["care_date"], r["performer_id"]) for r in lines}) == 1
    assert sum(len(lines) > 1 for lines in invoices.values()) > len(invoices) / 10
    assert {r["code_system"] for r in rows} >= {"CCAM", "NGAP", "NABM", "CIP13"}


def test_every_resource_passes_the_server_validation(data: tuple[list[Json], Any]) -> None:
    resources = data[0]
    patients = {f"Patient/{p['id']}" for p in _of(resources, "Patient")[:10]}

    def of_first_patients(r: Json) -> bool:
        subject = r.get("subject") or r.get("patient") or {}
        return r["resourceType"] in {"Organization", "Practitioner", "PractitionerRole"} or (
            f"Patient/{r['id']}" in patients or subject.get("reference") in patients
        )

    checked = [validate_resource(r) for r in resources if of_first_patients(r)]
    assert {r["resourceType"] for r in checked} >= {
        "Patient", "DocumentReference", "AllergyIntolerance", "MedicationStatement", "Organization",
        "Practitioner", "PractitionerRole",
    }  # fmt: skip


async def test_demo_data_loads_through_the_write_path_and_reads_back(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FHIR_MONGO_URI", settings.mongo_uri)
    monkeypatch.setenv("FHIR_MONGO_DB", settings.mongo_db)
    extract = tmp_path / "extract.csv"
    argv = [
        "demo-data",
        "--patients",
        "2",
        "--seed",
        "91",
        "--as-of",
        AS_OF.isoformat(),
        "--extract",
        str(extract),
    ]
    assert await asyncio.to_thread(main, argv) == 0
    assert extract.read_text(encoding="utf-8").startswith(";".join(EXTRACT_COLUMNS) + "\n")

    expected = [e["resource"] for c in generate(DemoOptions(2, 91, AS_OF)) for e in c.bundle["entry"]]
    patient = _of(expected, "Patient")[0]
    nir = patient["identifier"][0]["value"]
    found = (await client.get("Patient", params={"identifier": f"{INS_NIR}|{nir}"})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [patient["id"]]
    for rtype in (
        "Patient",
        "DocumentReference",
        "Binary",
        "Practitioner",
        "PractitionerRole",
        "Organization",
    ):
        want = _of(expected, rtype)[0]
        got = (await client.get(f"{rtype}/{want['id']}")).json()
        assert {k: v for k, v in got.items() if k != "meta"} == {k: v for k, v in want.items() if k != "meta"}
        assert got["meta"].get("security") == want.get("meta", {}).get("security")
