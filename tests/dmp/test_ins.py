"""The INS is checked on every Patient write path: 422 naming the identifier, nothing written."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.storage.client import Mongo
from tests.conftest import patient, snapshot
from tests.dmp.ins import INS_NIR, dmp_patient, fresh_nir, keyed

NIA = "urn:oid:1.2.250.1.213.1.4.9"
TEST_NIR = "urn:oid:1.2.250.1.213.1.4.10"


def _bad_key(nir: str) -> str:
    return nir[:13] + f"{(int(nir[13:]) + 1) % 97:02d}"


def _expression(r: httpx.Response) -> list[str]:
    return r.json()["issue"][0]["expression"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("28004751081", "15 characters"),
        (_bad_key(fresh_nir()), "key"),
        (keyed("5800475108123"), "sex digit"),
        (fresh_nir(gender="male"), "female"),
        (fresh_nir(birth="1981-04-12"), "year"),
        (fresh_nir(birth="1980-05-12"), "month"),
    ],
)
async def test_bad_ins_on_create_is_422_naming_the_identifier(
    client: httpx.AsyncClient, mongo: Mongo, value: str, why: str
) -> None:
    body = patient(
        identifier=[{"system": "urn:oid:1.2.3", "value": "x"}, {"system": INS_NIR, "value": value}]
    )
    before = await snapshot(mongo)
    r = await client.post("Patient", json=body)
    assert r.status_code == 422, r.text
    assert _expression(r) == ["Patient.identifier[1].value"]
    assert why in r.json()["issue"][0]["diagnostics"]
    assert await snapshot(mongo) == before


async def test_valid_ins_including_corsica_nia_and_test_systems_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    for system, value in [
        (INS_NIR, fresh_nir(dept="2A")),
        (INS_NIR, fresh_nir(dept="2B")),
        (NIA, fresh_nir()),
        (TEST_NIR, fresh_nir()),
    ]:
        r = await client.post("Patient", json=patient(identifier=[{"system": system, "value": value}]))
        assert r.status_code == 201, (system, value, r.text)


async def test_unknown_birth_month_matches_any_month(client: httpx.AsyncClient) -> None:
    nir = keyed(f"280{50}75{fresh_nir()[7:13]}")
    assert (await client.post("Patient", json=dmp_patient(nir))).status_code == 201


async def test_corsica_with_a_key_computed_without_the_substitution_is_refused(
    client: httpx.AsyncClient,
) -> None:
    body = f"28004{'2A'}{fresh_nir()[7:13]}"
    naive = f"{97 - int(body.replace('2A', '20')) % 97:02d}"
    if naive == keyed(body)[13:]:
        pytest.skip("both keys coincide for this number")
    r = await client.post("Patient", json=dmp_patient(body + naive))
    assert r.status_code == 422 and "key" in r.json()["issue"][0]["diagnostics"]


async def test_patients_without_ins_are_accepted(client: httpx.AsyncClient) -> None:
    assert (await client.post("Patient", json=patient())).status_code == 201


async def test_update_patch_and_conditional_update_check_the_ins(
    client: httpx.AsyncClient, mongo: Mongo
) -> None:
    created = (await client.post("Patient", json=dmp_patient())).json()
    pid = created["id"]
    before = await snapshot(mongo)
    # Changing the gender makes the INS inconsistent.
    r = await client.put(f"Patient/{pid}", json={**created, "gender": "male"})
    assert r.status_code == 422 and _expression(r) == ["Patient.identifier[0].value"]
    ops = [
        {"op": "replace", "path": "/identifier/0/value", "value": _bad_key(created["identifier"][0]["value"])}
    ]
    r = await client.patch(
        f"Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 422 and _expression(r) == ["Patient.identifier[0].value"]
    r = await client.put(f"Patient?_id={pid}", json={**created, "birthDate": "1990-04-12"})
    assert r.status_code == 422 and _expression(r) == ["Patient.identifier[0].value"]
    assert await snapshot(mongo) == before


def _entry(method: str, url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": method, "url": url}}


async def test_transaction_with_a_bad_ins_writes_nothing(client: httpx.AsyncClient, mongo: Mongo) -> None:
    before = await snapshot(mongo)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry("POST", "Patient", dmp_patient()),
            _entry("PUT", "Patient/ins-bad-tx", {**dmp_patient(_bad_key(fresh_nir())), "id": "ins-bad-tx"}),
        ],
    }
    r = await client.post("", json=bundle)
    assert r.status_code == 422
    assert _expression(r) == ["Patient.identifier[0].value"]
    assert "Bundle.entry[1]" in r.json()["issue"][0]["diagnostics"]
    assert await snapshot(mongo) == before


async def test_batch_reports_the_bad_entry_and_keeps_the_good_one(client: httpx.AsyncClient) -> None:
    good = dmp_patient()
    patch = base64.b64encode(orjson.dumps([{"op": "replace", "path": "/gender", "value": "male"}])).decode()
    target = (await client.post("Patient", json=dmp_patient())).json()
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            _entry("POST", "Patient", good),
            _entry("POST", "Patient", dmp_patient(_bad_key(fresh_nir()))),
            _entry(
                "PATCH",
                f"Patient/{target['id']}",
                {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch},
            ),
        ],
    }
    r = await client.post("", json=bundle)
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1] == "422" and statuses[2] == "422"
    outcome = r.json()["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["expression"] == ["Patient.identifier[0].value"]
