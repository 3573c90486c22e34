from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_server.fhir.bindings import BindingIssue, check_required_bindings

GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
CLINICAL = "http://hl7.org/fhir/ValueSet/allergyintolerance-clinical"
CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "fhir-r4" / "examples"
SERVED = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "DocumentReference", "Binary",
    "AllergyIntolerance", "MedicationStatement", "Medication", "Claim", "ExplanationOfBenefit",
    "Coverage", "Consent", "AuditEvent", "Provenance", "Group",
}  # fmt: skip


def _expressions(resource: dict[str, Any]) -> list[str]:
    return [issue.expression for issue in check_required_bindings(resource)]


def test_valid_resource_has_no_issue() -> None:
    patient = {
        "resourceType": "Patient",
        "gender": "female",
        "name": [{"use": "official", "family": "Durand"}],
        "telecom": [{"system": "phone", "value": "0102030405", "use": "home"}],
    }
    assert check_required_bindings(patient) == []


def test_unknown_gender_is_reported_at_its_path() -> None:
    issues = check_required_bindings({"resourceType": "Patient", "gender": "xx"})
    assert issues == [BindingIssue(expression="Patient.gender", code="xx", valueset=GENDER)]


def test_codes_in_repeating_datatypes_carry_their_index() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"use": "official"}, {"use": "bogus"}],
        "address": [{"use": "home", "type": "both"}, {"type": "nowhere"}],
    }
    assert _expressions(patient) == ["Patient.name[1].use", "Patient.address[1].type"]


def test_backbone_and_content_reference_elements_are_walked() -> None:
    patient = {"resourceType": "Patient", "contact": [{"gender": "unknown"}, {"gender": "nope"}]}
    assert _expressions(patient) == ["Patient.contact[1].gender"]
    consent = {
        "resourceType": "Consent",
        "provision": {"type": "permit", "provision": [{"type": "deny"}, {"type": "maybe"}]},
    }
    assert _expressions(consent) == ["Consent.provision.provision[1].type"]


def test_choice_values_are_checked_with_their_type() -> None:
    # Quantity.comparator is bound, and reached through an extension's valueQuantity.
    patient = {
        "resourceType": "Patient",
        "extension": [{"url": "http://example.org/x", "valueQuantity": {"value": 1, "comparator": "~"}}],
    }
    assert _expressions(patient) == ["Patient.extension[0].value.comparator"]


def test_contained_resources_are_checked_with_their_own_type() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "contained": [{"resourceType": "Medication", "id": "m", "status": "gone"}],
    }
    issues = check_required_bindings(statement)
    assert [(i.expression, i.code) for i in issues] == [("MedicationStatement.contained[0].status", "gone")]


def test_codeable_concept_needs_one_coding_from_the_value_set() -> None:
    allergy: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/1"},
        "clinicalStatus": {
            "coding": [
                {"system": "http://example.org/local", "code": "x"},
                {"system": CLINICAL_SYSTEM, "code": "active"},
            ]
        },
    }
    assert check_required_bindings(allergy) == []
    allergy["clinicalStatus"] = {"coding": [{"system": "http://example.org/local", "code": "active"}]}
    assert check_required_bindings(allergy) == [
        BindingIssue(expression="AllergyIntolerance.clinicalStatus", code="active", valueset=CLINICAL)
    ]
    allergy["clinicalStatus"] = {"text": "ongoing"}
    assert _expressions(allergy) == ["AllergyIntolerance.clinicalStatus"]


def test_open_value_sets_are_never_checked() -> None:
    # mimetypes draws on BCP-13, which the definitions cannot enumerate.
    binary = {"resourceType": "Binary", "contentType": "application/x-anything"}
    assert check_required_bindings(binary) == []


def test_unknown_types_and_odd_shapes_are_ignored() -> None:
    assert check_required_bindings({"resourceType": "Observation", "status": "nonsense"}) == []
    assert check_required_bindings({"gender": "xx"}) == []
    assert check_required_bindings({"resourceType": "Patient", "gender": 3, "name": ["x", None]}) == []


def test_input_is_not_modified() -> None:
    patient = {"resourceType": "Patient", "gender": "xx", "name": [{"use": "bogus"}]}
    before = json.dumps(patient)
    check_required_bindings(patient)
    assert json.dumps(patient) == before


def _served_examples() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    return [p for p in sorted(EXAMPLES.glob("*.json")) if p.name.split("-", 1)[0] in SERVED]


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="HL7 examples (../shared/fhir-r4) not present")
@pytest.mark.parametrize("path", _served_examples(), ids=lambda p: p.stem)
def test_hl7_examples_respect_required_bindings(path: Path) -> None:
    resource = json.loads(path.read_text(encoding="utf-8"))
    assert check_required_bindings(resource) == []
