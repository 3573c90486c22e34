from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhir_server.fhir import typemodel

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "fhir-r4" / "examples"


def test_plain_element_carries_cardinality_summary_and_binding() -> None:
    gender = typemodel.element_def("Patient", "gender")
    assert gender is not None
    assert gender.types == ("code",)
    assert not gender.array
    assert gender.summary
    assert gender.min == 0
    assert gender.binding == "http://hl7.org/fhir/ValueSet/administrative-gender"


def test_choice_keys_resolve_to_their_single_type() -> None:
    deceased = typemodel.element_def("Patient", "deceasedDateTime")
    assert deceased is not None
    assert deceased.name == "deceased[x]"
    assert deceased.path_name == "deceased"
    assert deceased.types == ("dateTime",)
    value = typemodel.element_def("Extension", "valueCodeableConcept")
    assert value is not None and value.types == ("CodeableConcept",)
    assert typemodel.element_def("Patient", "deceased[x]") is None
    assert typemodel.element_def("Patient", "deceasedQuantity") is None


def test_backbone_elements_are_anonymous_types() -> None:
    contact = typemodel.element_def("Patient", "contact")
    assert contact is not None and contact.array
    assert contact.types == ("Patient.contact",)
    assert typemodel.is_complex("Patient.contact")
    relationship = typemodel.element_def("Patient.contact", "relationship")
    assert relationship is not None and relationship.types == ("CodeableConcept",)


def test_content_reference_points_at_the_reused_definition() -> None:
    adjudication = typemodel.element_def("ExplanationOfBenefit.item.detail", "adjudication")
    assert adjudication is not None
    assert adjudication.types == ("ExplanationOfBenefit.item.adjudication",)
    nested = typemodel.element_def("Consent.provision", "provision")
    assert nested is not None and nested.types == ("Consent.provision",)


def test_datatypes_reachable_from_served_types_are_modelled_and_primitives_are_not() -> None:
    for name in ("HumanName", "CodeableConcept", "Coding", "Extension", "Dosage", "Timing.repeat"):
        assert typemodel.is_complex(name), name
    assert not typemodel.is_complex("string")
    assert typemodel.elements("code") is None
    assert typemodel.elements("NoSuchType") is None


def test_primitive_extension_keys_are_not_elements() -> None:
    assert typemodel.element_def("Patient", "_birthDate") is None


def test_contained_holds_resources() -> None:
    contained = typemodel.element_def("Patient", "contained")
    assert contained is not None and contained.types == (typemodel.RESOURCE,)


def test_summary_and_mandatory_keys() -> None:
    summary = typemodel.summary_keys("Patient")
    assert {"id", "meta", "name", "gender", "birthDate", "deceasedBoolean"} <= summary
    assert not {"text", "contact", "photo", "contained"} & summary
    assert typemodel.mandatory_keys("Patient") == frozenset()
    assert {"status", "patient", "created", "provider", "priority", "insurance"} <= typemodel.mandatory_keys(
        "Claim"
    )


def test_json_types_accepts_a_well_formed_resource() -> None:
    patient = {
        "resourceType": "Patient",
        "active": True,
        "name": [{"family": "Durand", "given": ["Hélène", None], "_given": [None, {"id": "g2"}]}],
        "multipleBirthInteger": 2,
        "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
        "contained": [{"resourceType": "Organization", "id": "o", "active": False}],
    }
    assert typemodel.check_json_types(patient) == []


def test_json_types_reports_what_r4_json_forbids() -> None:
    patient = {
        "resourceType": "Patient",
        "gender": ["male"],
        "active": "true",
        "name": {"family": "x"},
        "foo": 1,
        "multipleBirthInteger": 1.5,
        "_birthDate": {"bad": 1},
        "contained": [{"id": "x"}, {"resourceType": "Medication", "status": 1}],
    }
    assert typemodel.check_json_types(patient) == [
        ("Patient.gender", "must not be an array"),
        ("Patient.active", "must be a boolean"),
        ("Patient.name", "must be an array"),
        ("Patient.foo", "unknown element"),
        ("Patient.multipleBirth", "must be an integer"),
        ("Patient._birthDate.bad", "unknown element"),
        ("Patient.contained[0]", "must be a resource with a resourceType"),
        ("Patient.contained[1].status", "must be a string"),
    ]


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="HL7 examples (../shared/fhir-r4) not present")
def test_json_types_accepts_every_hl7_example_of_a_served_type() -> None:
    checked = 0
    for path in sorted(EXAMPLES.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if typemodel.is_complex(resource["resourceType"]):
            assert typemodel.check_json_types(resource) == [], path.name
            checked += 1
    assert checked > 100
