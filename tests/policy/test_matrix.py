"""The habilitation matrix, from terminology/habilitations.json: every profession × every document type
× read and write, through the API; and a bad matrix stops the server naming the bad entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.app import create_app
from fhir_server.auth.matrix import TERMINOLOGY_DIR, MatrixError, load_matrix
from fhir_server.config import Settings
from tests.policy.dmp import (
    TYPE_CLASS,
    consent,
    create,
    document,
    ids,
    new_patient,
    new_practitioner,
    professional,
)

MATRIX = json.loads((TERMINOLOGY_DIR / "habilitations.json").read_text("utf-8"))
# Every entry that grants something, with a profession code that reaches it ("*": one not listed).
ENTRIES = [
    (e["profession"] if e["profession"] != "*" else "91", e.get("specialty"), e)
    for e in MATRIX["professions"]
    if not e.get("refused")
]


EACH_ENTRY = pytest.mark.parametrize(
    ("profession", "specialty", "entry"), ENTRIES, ids=[e["label"][:30] for *_, e in ENTRIES]
)


def _granted(rights: dict[str, Any], type_code: str) -> bool:
    docs = set(rights["documents"])
    return "*" in docs or type_code in docs or TYPE_CLASS[type_code] in docs


@pytest.fixture(scope="module")
async def record(client: httpx.AsyncClient) -> dict[str, Any]:
    """One patient with one document of every type, and one professional per matrix entry, each
    authorized by the patient."""
    pid = await new_patient(client, "Matrice")
    docs = {t: await create(client, document(pid, t)) for t in TYPE_CLASS}
    allergy = await create(
        client,
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{pid}"},
            "code": {"text": "pénicilline"},
        },
    )
    pros = {}
    for profession, specialty, _ in ENTRIES:
        prac = await new_practitioner(client, profession, specialty)
        await create(client, consent(pid, prac))
        pros[(profession, specialty)] = prac
    return {"pid": pid, "docs": docs, "allergy": allergy, "pros": pros}


@EACH_ENTRY
async def test_each_profession_reads_exactly_what_the_matrix_grants(
    app: FastAPI,
    client: httpx.AsyncClient,
    record: dict[str, Any],
    profession: str,
    specialty: str | None,
    entry: dict[str, Any],
) -> None:
    headers = await professional(app, record["pros"][(profession, specialty)], profession, specialty)
    r = await client.get(
        "DocumentReference", params={"patient": record["pid"], "_count": "100"}, headers=headers
    )
    assert r.status_code == 200, r.text
    seen = ids(r.json())
    expected = {rid for t, rid in record["docs"].items() if _granted(entry["read"], t)}
    assert seen == expected, sorted(
        t for t, rid in record["docs"].items() if (rid in seen) != (rid in expected)
    )
    # A read of each document agrees with the search.
    for t, rid in record["docs"].items():
        got = await client.get(f"DocumentReference/{rid}", headers=headers)
        assert got.status_code == (200 if _granted(entry["read"], t) else 403), (t, got.text)
    allergies = await client.get("AllergyIntolerance", params={"patient": record["pid"]}, headers=headers)
    readable = "AllergyIntolerance" in entry["read"]["resources"]
    if readable:
        assert ids(allergies.json()) == {record["allergy"]}
    else:
        assert allergies.status_code == 403


@EACH_ENTRY
async def test_each_profession_writes_exactly_what_the_matrix_grants(
    app: FastAPI,
    client: httpx.AsyncClient,
    record: dict[str, Any],
    profession: str,
    specialty: str | None,
    entry: dict[str, Any],
) -> None:
    prac = record["pros"][(profession, specialty)]
    headers = await professional(app, prac, profession, specialty)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": document(record["pid"], t, author=f"Practitioner/{prac}"),
                "request": {"method": "POST", "url": "DocumentReference"},
            }
            for t in TYPE_CLASS
        ],
    }
    r = await client.post("", json=batch, headers=headers)
    assert r.status_code == 200, r.text
    got = [e["response"]["status"].split()[0] for e in r.json()["entry"]]
    expected = ["201" if _granted(entry["write"], t) else "403" for t in TYPE_CLASS]
    assert got == expected, [t for t, g, x in zip(TYPE_CLASS, got, expected, strict=True) if g != x]


def _write(directory: Path, data: dict[str, Any]) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "habilitations.json").write_text(json.dumps(data), "utf-8")
    (directory / "habilitations.schema.json").write_text(
        (TERMINOLOGY_DIR / "habilitations.schema.json").read_text("utf-8"), "utf-8"
    )


def test_the_shipped_matrix_is_valid() -> None:
    matrix = load_matrix()
    assert matrix.for_professional("21", None).label.startswith("Pharmacien")
    assert matrix.for_professional("26", None).label.startswith("Other professions")


def test_a_bad_matrix_stops_the_server_naming_the_entry(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(MATRIX))
    pharmacist = next(e for e in bad["professions"] if e["profession"] == "21")
    pharmacist["read"]["documents"].append("not-a-code")
    _write(tmp_path / "m", bad)
    with pytest.raises(MatrixError, match=r"professions/\d+/read/documents.*'21'.*Pharmacien"):
        create_app(Settings(terminology_dir=tmp_path / "m"))
    missing_star = json.loads(json.dumps(MATRIX))
    missing_star["professions"] = [e for e in missing_star["professions"] if e["profession"] != "*"]
    _write(tmp_path / "n", missing_star)
    with pytest.raises(MatrixError, match="'\\*' profession entry"):
        load_matrix(tmp_path / "n")
