"""The generic validator (fhir_server/profiles/validator.py) on the base R4 definitions and the DMP
profiles, without a database."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import scripts.gen_profiles as gen
from fhir_server.dmp.demo import DemoOptions, generate
from fhir_server.fhir.validation import structure_issues
from fhir_server.profiles.registry import BASE, Profiles, default_profiles
from tests.api.test_examples import NAMES, example
from tests.profiles.examples import EXAMPLES, SD, profile_example

P = default_profiles()
RESOURCE_PROFILES = sorted(url.removeprefix(SD) for url in P.dmp_profiles().values())


def _errors(resource: dict[str, Any], url: str, full: bool = True) -> set[tuple[str, str]]:
    return {(i.code, i.expression or "") for i in P.validate(resource, url, full) if i.severity == "error"}


@pytest.mark.parametrize("name", NAMES)
def test_hl7_example_has_no_error_against_its_base_definition(name: str) -> None:
    resource = example(name)
    issues = [i for i in P.validate(resource, BASE + resource["resourceType"]) if i.severity == "error"]
    assert issues == []


@pytest.mark.parametrize("name", [n for n in NAMES if P.dmp_profile(example(n)["resourceType"])])
def test_hl7_example_passes_the_vocabulary_check_of_the_dmp_profile(name: str) -> None:
    resource = example(name)
    assert _errors(resource, P.dmp_profile(resource["resourceType"]) or "", full=False) == set()


def test_every_resource_profile_has_a_good_and_a_bad_example() -> None:
    names = {p.name for p in EXAMPLES.glob("*.json")}
    for profile in [*RESOURCE_PROFILES, "dmp-creation-channel"]:
        assert len([n for n in names if f"-{profile}-good" in n]) == 1, profile
        assert len([n for n in names if f"-{profile}-bad" in n]) == 1, profile


@pytest.mark.parametrize("profile", RESOURCE_PROFILES)
def test_good_example_is_valid_and_claims_its_profile(profile: str) -> None:
    (path,) = EXAMPLES.glob(f"*-{profile}-good.json")
    resource = json.loads(path.read_text("utf-8"))
    assert resource["meta"]["profile"] == [SD + profile]
    assert structure_issues(resource, resource["resourceType"]) == []
    assert P.validate(resource, SD + profile) == []  # not even a warning


BAD = {
    "dmp-patient": {
        ("code-invalid", "Patient.extension[0].value"),  # channel "mairie"
        ("structure", "Patient.identifier"),  # two INS-NIR
        ("invariant", "Patient.identifier[0]"),  # wrong NIR key
        ("value", "Patient.identifier[0].use"),  # INS-NIR with use "usual"
        ("required", "Patient.birthDate"),
    },
    "dmp-documentreference": {
        ("code-invalid", "DocumentReference.meta.security[0]"),  # not a TRE_A07 label
        ("code-invalid", "DocumentReference.type"),  # LOINC outside JDV_J66
        ("code-invalid", "DocumentReference.category[0]"),  # not a TRE_A03 class
        ("structure", "DocumentReference.subject"),  # a Group, not a Patient
        ("required", "DocumentReference.author"),
        ("invariant", "DocumentReference.content[0].attachment"),  # neither url nor data
        ("required", "DocumentReference.content[0].attachment.contentType"),
    },
    "dmp-allergyintolerance": {
        ("required", "AllergyIntolerance.clinicalStatus"),
        ("required", "AllergyIntolerance.code"),
        ("required", "AllergyIntolerance.recorder"),
    },
    "dmp-medicationstatement": {
        ("code-invalid", "MedicationStatement.medication"),  # RxNorm, not CIP13/UCD
        ("required", "MedicationStatement.effective"),
        ("required", "MedicationStatement.dateAsserted"),
    },
    "dmp-claim": {
        ("value", "Claim.use"),
        ("code-invalid", "Claim.item[0].productOrService"),
        ("required", "Claim.item[0].serviced"),
        ("value", "Claim.item[0].net.currency"),
    },
    "dmp-explanationofbenefit": {
        ("required", "ExplanationOfBenefit.claim"),
        ("required", "ExplanationOfBenefit.payment"),
        ("invariant", "ExplanationOfBenefit.item[0]"),  # no benefit adjudication
        ("value", "ExplanationOfBenefit.item[0].adjudication[0].amount.currency"),
    },
}


@pytest.mark.parametrize("profile", RESOURCE_PROFILES)
def test_bad_example_fails_with_the_expected_issues(profile: str) -> None:
    (path,) = EXAMPLES.glob(f"*-{profile}-bad.json")
    resource = json.loads(path.read_text("utf-8"))
    assert structure_issues(resource, resource["resourceType"]) == []  # valid R4, invalid DMP
    assert _errors(resource, SD + profile) == BAD[profile]


def test_bad_example_messages_name_the_rule() -> None:
    issues = P.validate(profile_example("Patient-dmp-patient-bad"), SD + "dmp-patient")
    messages = [i.diagnostics for i in issues if i.severity == "error"]
    assert any("dmp-pat-3" in m and "modulo 97" in m for m in messages)
    assert any("at most 1 allowed, found 2" in m and "INS-NIR" in m for m in messages)
    assert any("must be exactly 'official'" in m for m in messages)


def test_extension_examples() -> None:
    url = SD + "dmp-creation-channel"
    assert P.validate(profile_example("Extension-dmp-creation-channel-good"), url) == []
    bad = P.validate(profile_example("Extension-dmp-creation-channel-bad"), url)
    assert [(i.code, i.expression) for i in bad] == [("structure", "Extension.value")]
    assert "allows Coding" in bad[0].diagnostics


def test_vocabulary_check_refuses_unknown_codes_of_dmp_systems_only() -> None:
    doc = profile_example("DocumentReference-dmp-documentreference-bad")
    # Without the claim: missing author, a Group subject, a foreign LOINC type pass; the DMP's own
    # code systems (visibility label, class) do not.
    assert _errors(doc, SD + "dmp-documentreference", full=False) == {
        ("code-invalid", "DocumentReference.meta.security[0]"),
        ("code-invalid", "DocumentReference.category[0].coding[0]"),
    }
    patient = profile_example("Patient-dmp-patient-bad")
    assert _errors(patient, SD + "dmp-patient", full=False) == {
        ("code-invalid", "Patient.extension[0].value")
    }


def test_check_applies_claimed_profiles_in_full_and_ignores_unknown_ones() -> None:
    minimal = {"resourceType": "Patient", "name": [{"family": "Durand"}]}
    assert P.check(minimal) == []
    claimed = {**minimal, "meta": {"profile": [SD + "dmp-patient"]}}
    assert ("invariant", "Patient") in {(i.code, i.expression) for i in P.check(claimed)}  # dmp-pat-1: no INS
    unknown = {**minimal, "meta": {"profile": ["http://example.org/StructureDefinition/other"]}}
    assert P.check(unknown) == []
    other_type = {**minimal, "meta": {"profile": [BASE + "Patient", SD + "dmp-claim"]}}
    assert [(i.code, i.expression) for i in P.check(other_type) if i.severity == "error"] == [
        ("invalid", "Patient.meta.profile[1]")
    ]


def test_base_invariants_and_reference_targets_are_checked() -> None:
    patient = {
        "resourceType": "Patient",
        "contact": [{"gender": "male"}],
        "generalPractitioner": [{"reference": "Claim/1"}],
        "name": [{"family": "A", "period": {"start": "2020-01-02", "end": "2019-01-01"}}],
    }
    assert _errors(patient, BASE + "Patient") == {
        ("invariant", "Patient.contact[0]"),  # pat-1
        ("structure", "Patient.generalPractitioner[0]"),
        ("invariant", "Patient.name[0].period"),  # per-1 (needs hasValue(), given to fhirpathpy)
    }


def test_validation_does_not_change_the_resource() -> None:
    resource = profile_example("Claim-dmp-claim-bad")
    before = copy.deepcopy(resource)
    P.validate(resource, SD + "dmp-claim")
    assert resource == before


SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fhir-r4"


@pytest.mark.skipif(not SHARED.is_dir(), reason="the HL7 definitions are not available")
def test_committed_snapshots_are_what_the_generator_makes() -> None:
    bases = gen._load_bases(SHARED / "structuredefinitions")
    for path in sorted((EXAMPLES.parent / "differentials").glob("*.json")):
        spec = json.loads(path.read_text("utf-8"))
        committed = json.loads(
            (EXAMPLES.parent / f"StructureDefinition-{spec['id']}.json").read_text("utf-8")
        )
        assert gen.build_profile(spec, bases) == committed, f"rerun scripts/gen_profiles.py ({spec['id']})"


def test_demo_data_conforms_to_the_dmp_profiles() -> None:
    checked: set[str] = set()
    for chunk in generate(DemoOptions(20, 3, date(2026, 11, 1))):
        for entry in chunk.bundle["entry"]:
            resource = entry["resource"]
            url = P.dmp_profile(resource["resourceType"])
            if url is not None:
                checked.add(resource["resourceType"])
                assert _errors(resource, url) == set(), resource["id"]
    assert checked == {"Patient", "DocumentReference", "AllergyIntolerance", "MedicationStatement"}


@pytest.mark.skipif(not SHARED.is_dir(), reason="the HL7 definitions are not available")
def test_pattern_values_and_closed_slicing_from_any_differential() -> None:
    url = "http://example.org/StructureDefinition/phones-only"
    spec = {
        "id": "phones-only",
        "url": url,
        "name": "PhonesOnly",
        "title": "Phones only",
        "description": "A test profile.",
        "baseDefinition": BASE + "Patient",
        "differential": {
            "element": [
                {
                    "id": "Patient.maritalStatus",
                    "path": "Patient.maritalStatus",
                    "patternCodeableConcept": {"text": "M"},
                },
                {
                    "id": "Patient.telecom",
                    "path": "Patient.telecom",
                    "slicing": {"discriminator": [{"type": "pattern", "path": "system"}], "rules": "closed"},
                },
                {
                    "id": "Patient.telecom:phone",
                    "path": "Patient.telecom",
                    "sliceName": "phone",
                    "min": 1,
                    "max": "1",
                },
                {
                    "id": "Patient.telecom:phone.system",
                    "path": "Patient.telecom.system",
                    "patternCode": "phone",
                },
                {"id": "Patient.telecom:phone.value", "path": "Patient.telecom.value", "min": 1},
            ]
        },
    }
    profiles = Profiles(
        [gen.build_profile(spec, gen._load_bases(SHARED / "structuredefinitions"))], P.terminology
    )

    def errors(resource: dict[str, Any]) -> set[tuple[str, str]]:
        return {
            (i.code, i.expression or "") for i in profiles.validate(resource, url) if i.severity == "error"
        }

    good = {
        "resourceType": "Patient",
        "maritalStatus": {"coding": [{"code": "x"}], "text": "M"},
        "telecom": [{"system": "phone", "value": "01 02 03 04 05"}],
    }
    assert errors(good) == set()
    bad = {
        "resourceType": "Patient",
        "maritalStatus": {"text": "S"},
        "telecom": [{"system": "email", "value": "a@b.fr"}, {"system": "phone"}],
    }
    assert errors(bad) == {
        ("value", "Patient.maritalStatus"),
        ("structure", "Patient.telecom[0]"),  # fits no slice of a closed slicing
        ("required", "Patient.telecom[1].value"),
    }
    assert ("required", "Patient.telecom") in errors({"resourceType": "Patient"})  # the phone slice is 1..1


def test_enforced_profiles_apply_in_full_without_a_claim() -> None:
    enforced = Profiles(P.definitions(), P.terminology, enforced=True)
    minimal = {"resourceType": "Patient", "name": [{"family": "Durand"}]}
    assert ("required", "Patient.birthDate") in {(i.code, i.expression) for i in enforced.check(minimal)}
    assert enforced.check({"resourceType": "Practitioner"}) == []  # no DMP profile for Practitioner
