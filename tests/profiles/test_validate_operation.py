"""[type]/$validate and [type]/[id]/$validate (fhir_server/operations/validate.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.profiles.examples import SD, profile_example

BASE_PATIENT = "http://hl7.org/fhir/StructureDefinition/Patient"


def _errors(r: httpx.Response) -> set[tuple[str, str]]:
    assert r.status_code == 200, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    return {
        (i["code"], e) for i in r.json()["issue"] if i["severity"] == "error" for e in i.get("expression", [])
    }


def _parameters(resource: dict[str, Any], **values: str) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"name": "resource", "resource": resource}]
    params += [{"name": k, "valueCode" if k == "mode" else "valueUri": v} for k, v in values.items()]
    return {"resourceType": "Parameters", "parameter": params}


async def test_a_good_resource_gives_one_informational_issue(client: httpx.AsyncClient) -> None:
    r = await client.post("Patient/$validate", json=profile_example("Patient-dmp-patient-good"))
    assert r.status_code == 200, r.text
    assert [i["severity"] for i in r.json()["issue"]] == ["information"]


async def test_a_bad_resource_gives_200_with_every_issue_and_stores_nothing(
    client: httpx.AsyncClient,
) -> None:
    bad = profile_example("Claim-dmp-claim-bad")
    errors = _errors(await client.post("Claim/$validate", json=_parameters(bad)))
    assert ("value", "Claim.use") in errors
    assert ("value", "Claim.item[0].net.currency") in errors
    assert (await client.get("Claim/dmp-claim-bad")).status_code == 404


async def test_profile_parameter_nominates_the_profile(client: httpx.AsyncClient) -> None:
    minimal = {"resourceType": "Patient", "name": [{"family": "Durand"}]}
    assert _errors(await client.post("Patient/$validate", json=minimal)) == set()
    nominated = await client.post("Patient/$validate", params={"profile": SD + "dmp-patient"}, json=minimal)
    assert _errors(nominated) == {
        ("invariant", "Patient"),  # dmp-pat-1: no INS
        ("required", "Patient.identifier"),
        ("required", "Patient.gender"),
        ("required", "Patient.birthDate"),
    }
    in_body = await client.post("Patient/$validate", json=_parameters(minimal, profile=SD + "dmp-patient"))
    assert _errors(in_body) == _errors(nominated)


async def test_warnings_of_the_base_definition_are_reported(client: httpx.AsyncClient) -> None:
    minimal = {"resourceType": "Patient", "name": [{"family": "Durand"}]}
    r = await client.post("Patient/$validate", json=minimal)
    assert [(i["severity"], i["diagnostics"].split(":")[1].strip()) for i in r.json()["issue"]] == [
        ("warning", "dom-6")
    ]


async def test_structural_problems_are_issues_not_a_400(client: httpx.AsyncClient) -> None:
    r = await client.post("Patient/$validate", json={"resourceType": "Patient", "gender": 3})
    assert ("structure", "Patient.gender") in _errors(r)


async def test_an_unknown_profile_or_mode_is_a_400(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Patient"}
    r = await client.post("Patient/$validate", params={"profile": "http://example.org/nope"}, json=body)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["profile"]
    r = await client.post("Patient/$validate", params={"mode": "purge"}, json=body)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["mode"]
    r = await client.post(
        "Patient/$validate", json={"resourceType": "Parameters", "parameter": [{"name": "x"}]}
    )
    assert r.status_code == 400


async def test_a_resource_of_another_type_is_an_issue(client: httpx.AsyncClient) -> None:
    r = await client.post("Patient/$validate", json={"resourceType": "Claim"})
    assert ("invalid", "resourceType") in _errors(r)


async def test_instance_level_validates_the_stored_resource_or_the_one_sent(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("Patient", json={"resourceType": "Patient", "name": [{"family": "Stocké"}]})
    pid = created.json()["id"]
    stored = await client.get(f"Patient/{pid}/$validate", params={"profile": SD + "dmp-patient"})
    assert ("required", "Patient.birthDate") in _errors(stored)
    other_id = {"resourceType": "Patient", "id": "someone-else"}
    assert ("invariant", "id") in _errors(await client.post(f"Patient/{pid}/$validate", json=other_id))
    same_id = {"resourceType": "Patient", "id": pid}
    assert _errors(await client.post(f"Patient/{pid}/$validate", json=same_id)) == set()


async def test_delete_mode_needs_an_existing_resource(client: httpx.AsyncClient) -> None:
    created = await client.post("Patient", json={"resourceType": "Patient"})
    pid = created.json()["id"]
    r = await client.post(f"Patient/{pid}/$validate", params={"mode": "delete"})
    assert _errors(r) == set()
    assert (await client.get(f"Patient/{pid}")).status_code == 200  # nothing deleted
    assert (
        await client.post("Patient/no-such-patient/$validate", params={"mode": "delete"})
    ).status_code == 404
    assert (await client.post("Patient/$validate", params={"mode": "delete"})).status_code == 400


async def test_the_write_rule_on_visibility_labels_is_reported(client: httpx.AsyncClient) -> None:
    doc = profile_example("DocumentReference-dmp-documentreference-good")
    system = doc["meta"]["security"][0]["system"]
    doc["meta"]["security"].append({"system": system, "code": "INVISIBLE_PATIENT"})
    assert ("business-rule", "DocumentReference.meta.security") in _errors(
        await client.post("DocumentReference/$validate", json=doc)
    )
