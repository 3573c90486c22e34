"""Writes are checked against the DMP profiles: in full when the resource claims one, for the DMP's
own vocabulary always (fhir_server/profiles/registry.py, Profiles.check)."""

from __future__ import annotations

import httpx

from fhir_server.dmp.nir import with_key
from tests.profiles.examples import profile_example

VISIBILITY = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
)


def _expressions(r: httpx.Response) -> set[str]:
    return {e for issue in r.json()["issue"] for e in issue.get("expression", [])}


async def test_a_resource_claiming_a_dmp_profile_that_breaks_it_is_refused_with_one_issue_per_failure(
    client: httpx.AsyncClient,
) -> None:
    bad = profile_example("DocumentReference-dmp-documentreference-bad")
    bad["meta"]["security"] = [{"system": VISIBILITY, "code": "MASQUE_PS"}]
    before = (await client.get("DocumentReference", params={"_total": "accurate", "_count": 0})).json()
    r = await client.post("DocumentReference", json=bad)
    assert r.status_code == 422, r.text
    assert _expressions(r) == {
        "DocumentReference.type",
        "DocumentReference.category[0]",
        "DocumentReference.subject",
        "DocumentReference.author",
        "DocumentReference.content[0].attachment",
        "DocumentReference.content[0].attachment.contentType",
    }
    assert all(issue["severity"] == "error" for issue in r.json()["issue"])
    after = (await client.get("DocumentReference", params={"_total": "accurate", "_count": 0})).json()
    assert after["total"] == before["total"]


async def test_good_examples_are_accepted(client: httpx.AsyncClient) -> None:
    for name in (
        "Patient-dmp-patient-good",
        "DocumentReference-dmp-documentreference-good",
        "AllergyIntolerance-dmp-allergyintolerance-good",
        "MedicationStatement-dmp-medicationstatement-good",
        "Claim-dmp-claim-good",
        "ExplanationOfBenefit-dmp-explanationofbenefit-good",
    ):
        resource = profile_example(name)
        r = await client.put(f"{resource['resourceType']}/{resource['id']}", json=resource)
        assert r.status_code in {200, 201}, (name, r.text)


async def test_an_unclaimed_minimal_resource_is_accepted(client: httpx.AsyncClient) -> None:
    r = await client.post("Patient", json={"resourceType": "Patient", "name": [{"family": "Sans-INS"}]})
    assert r.status_code == 201, r.text


async def test_an_unclaimed_resource_with_an_unknown_dmp_code_is_refused(client: httpx.AsyncClient) -> None:
    patient = profile_example("Patient-dmp-patient-good")
    del patient["meta"]
    patient["extension"][0]["valueCoding"]["code"] = "mairie"
    r = await client.post("Patient", json=patient)
    assert r.status_code == 422, r.text
    assert _expressions(r) == {"Patient.extension[0].value"}
    assert "dmp-creation-channel" in r.json()["issue"][0]["diagnostics"]


async def test_a_patch_that_breaks_a_claimed_profile_is_refused(client: httpx.AsyncClient) -> None:
    patient = profile_example("Patient-dmp-patient-good")
    patient["id"] = "dmp-patient-patched"
    patient["identifier"][0]["value"] = with_key("2840675056124")  # one DMP per INS: another one
    assert (await client.put("Patient/dmp-patient-patched", json=patient)).status_code in {200, 201}
    r = await client.patch(
        "Patient/dmp-patient-patched",
        json=[{"op": "remove", "path": "/birthDate"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 422, r.text
    assert _expressions(r) == {"Patient.birthDate"}


async def test_a_claim_to_an_unknown_profile_is_accepted(client: httpx.AsyncClient) -> None:
    resource = {
        "resourceType": "Patient",
        "meta": {"profile": ["http://example.org/fhir/StructureDefinition/not-known-here"]},
        "name": [{"family": "Ailleurs"}],
    }
    r = await client.post("Patient", json=resource)
    assert r.status_code == 201, r.text


async def test_a_claimed_base_profile_is_applied_in_full(client: httpx.AsyncClient) -> None:
    resource = {
        "resourceType": "Patient",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/Patient"]},
        "contact": [{"gender": "female"}],
    }
    r = await client.post("Patient", json=resource)
    assert r.status_code == 422, r.text
    assert _expressions(r) == {"Patient.contact[0]"}
    assert "pat-1" in r.json()["issue"][0]["diagnostics"]


async def test_a_transaction_entry_breaking_a_claimed_profile_fails_the_whole_bundle(
    client: httpx.AsyncClient,
) -> None:
    bad = profile_example("Claim-dmp-claim-bad")
    del bad["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": bad, "request": {"method": "POST", "url": "Claim"}},
        ],
    }
    r = await client.post("", json=bundle)
    assert r.status_code == 422, r.text
    assert "Claim.use" in _expressions(r)
