"""Patient.deceased (a boolean from two choice types) and mothersMaidenName (an extension)."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import patient

MAIDEN = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


async def _ids(client: httpx.AsyncClient, **params: str) -> set[str]:
    r = await client.get("Patient", params=params)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


async def test_deceased_true_false_and_absent(client: httpx.AsyncClient) -> None:
    family = f"Décès{uuid.uuid4().hex[:6]}"
    made = {}
    for key, extra in {
        "dated": {"deceasedDateTime": "2021-03-04"},
        "flag": {"deceasedBoolean": True},
        "alive": {"deceasedBoolean": False},
        "unknown": {},
    }.items():
        r = await client.post("Patient", json=patient(family, **extra))
        assert r.status_code == 201, r.text
        made[key] = r.json()["id"]
    assert await _ids(client, family=family, deceased="true") == {made["dated"], made["flag"]}
    assert await _ids(client, family=family, deceased="false") == {made["alive"], made["unknown"]}


async def test_mothers_maiden_name_is_searched_like_a_name(client: httpx.AsyncClient) -> None:
    maiden = f"Crémieux{uuid.uuid4().hex[:6]}"
    r = await client.post("Patient", json=patient(extension=[{"url": MAIDEN, "valueString": maiden}]))
    assert r.status_code == 201, r.text
    assert await _ids(client, mothersMaidenName=maiden[:5].lower().replace("é", "e")) >= {r.json()["id"]}
    assert await _ids(client, mothersMaidenName=f"{maiden}x") == set()
