"""The creation channel on the Patient, and the patient's consent when someone else opens the DMP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from fhir_server.storage.client import Mongo
from tests.conftest import snapshot
from tests.dmp.ins import CHANNEL_SYSTEM, CHANNEL_URL, dmp_patient

ROOT = Path(__file__).resolve().parents[2]
OPENING_POLICY = "https://dmp-fhir.org/policy/dmp-opening"
CHANNELS = ["patient-web", "pharmacie", "cpam", "professionnel-sante", "etablissement"]


async def _consents(client: httpx.AsyncClient, pid: str) -> list[dict[str, object]]:
    bundle = (await client.get("Consent", params={"patient": pid})).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def test_the_code_system_and_the_extension_definition_are_published() -> None:
    cs = json.loads((ROOT / "terminology" / "CodeSystem-dmp-creation-channel.json").read_text("utf-8"))
    assert cs["resourceType"] == "CodeSystem" and cs["url"] == CHANNEL_SYSTEM
    assert [c["code"] for c in cs["concept"]] == CHANNELS
    sd = json.loads((ROOT / "profiles" / "StructureDefinition-dmp-creation-channel.json").read_text("utf-8"))
    assert sd["url"] == CHANNEL_URL and sd["type"] == "Extension"
    assert sd["baseDefinition"] == "http://hl7.org/fhir/StructureDefinition/Extension"
    assert {"type": "element", "expression": "Patient"} in sd["context"]
    value = next(e for e in sd["differential"]["element"] if e["path"] == "Extension.value[x]")
    assert value["type"] == [{"code": "Coding"}] and value["binding"]["valueSet"].startswith(CHANNEL_SYSTEM)


@pytest.mark.parametrize("channel", CHANNELS)
async def test_every_channel_is_accepted_and_kept(client: httpx.AsyncClient, channel: str) -> None:
    r = await client.post("Patient", json=dmp_patient(channel=channel))
    assert r.status_code == 201, r.text
    stored = (await client.get(f"Patient/{r.json()['id']}")).json()
    assert stored["extension"][0]["valueCoding"]["code"] == channel


async def test_unknown_channel_is_422_and_writes_nothing(client: httpx.AsyncClient, mongo: Mongo) -> None:
    before = await snapshot(mongo)
    r = await client.post("Patient", json=dmp_patient(channel="bureau-de-tabac"))
    assert r.status_code == 422
    # The DMP profile's vocabulary check (the required binding of the extension's value) answers first.
    assert r.json()["issue"][0]["expression"] == ["Patient.extension[0].value"]
    wrong_system = dmp_patient(channel="cpam")
    wrong_system["extension"][0]["valueCoding"]["system"] = "http://example.org/channels"
    r = await client.post("Patient", json=wrong_system)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Patient.extension[0].valueCoding"]
    assert await snapshot(mongo) == before


async def test_the_channel_does_not_change_once_recorded(client: httpx.AsyncClient) -> None:
    created = (await client.post("Patient", json=dmp_patient(channel="pharmacie"))).json()
    moved = {
        **created,
        "extension": [{"url": CHANNEL_URL, "valueCoding": {"system": CHANNEL_SYSTEM, "code": "cpam"}}],
    }
    assert (await client.put(f"Patient/{created['id']}", json=moved)).status_code == 422
    removed = {k: v for k, v in created.items() if k != "extension"}
    assert (await client.put(f"Patient/{created['id']}", json=removed)).status_code == 422


async def test_opening_by_someone_else_records_the_patients_consent(client: httpx.AsyncClient) -> None:
    pid = (await client.post("Patient", json=dmp_patient(channel="pharmacie"))).json()["id"]
    [consent] = await _consents(client, pid)
    assert consent["status"] == "active"
    assert consent["policy"] == [{"uri": OPENING_POLICY}]
    assert consent["performer"] == [{"reference": f"Patient/{pid}"}]
    assert consent["provision"]["type"] == "permit"
    assert consent["provision"]["code"][0]["coding"][0]["code"] == "pharmacie"
    # Updating the DMP later records nothing more.
    current = (await client.get(f"Patient/{pid}")).json()
    await client.put(f"Patient/{pid}", json={**current, "name": [{"family": "Martin"}]})
    assert len(await _consents(client, pid)) == 1


async def test_opening_online_by_the_patient_needs_no_consent_record(client: httpx.AsyncClient) -> None:
    pid = (await client.post("Patient", json=dmp_patient(channel="patient-web"))).json()["id"]
    assert await _consents(client, pid) == []


async def test_the_opening_consent_does_not_authorize_any_professional(
    client: httpx.AsyncClient, app: object
) -> None:
    from tests.conftest import bearer

    pid = (await client.post("Patient", json=dmp_patient(channel="professionnel-sante"))).json()["id"]
    doctor = await bearer(
        app, "user/*.*", role="practitioner", profession="10", fhirUser="Practitioner/opening-doctor"
    )
    r = await client.get(f"Patient/{pid}", headers=doctor)
    assert r.status_code == 403
