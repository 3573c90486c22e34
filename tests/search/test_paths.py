"""The compiled FHIRPath subset used to extract search index values."""

from __future__ import annotations

from fhir_server.search.paths import compile_path
from fhir_server.search.registry import all_params


def test_dotted_path_flattens_arrays() -> None:
    f = compile_path("Patient", "Patient.name.given")
    assert f is not None
    assert f({"name": [{"given": ["Hélène", "Marie"]}, {"given": ["Léa"]}]}) == ["Hélène", "Marie", "Léa"]


def test_union_of_alternatives() -> None:
    f = compile_path("Patient", "Patient.telecom.where(system='phone') | Patient.identifier")
    assert f is not None
    res = {
        "telecom": [{"system": "phone", "value": "01"}, {"system": "email", "value": "a@b"}],
        "identifier": [{"value": "x"}],
    }
    assert f(res) == [{"system": "phone", "value": "01"}, {"value": "x"}]


def test_choice_type_with_as() -> None:
    f = compile_path("MedicationStatement", "(MedicationStatement.medication as CodeableConcept)")
    assert f is not None
    assert f({"medicationReference": {"reference": "Medication/1"}}) == []
    assert f({"medicationCodeableConcept": {"text": "x"}}) == [{"text": "x"}]


def test_where_resolve_is_keeps_references_of_that_type() -> None:
    f = compile_path("Provenance", "Provenance.target.where(resolve() is Patient)")
    assert f is not None
    refs = [{"reference": "Patient/1"}, {"reference": "Claim/2"}, {"reference": "http://x/fhir/Patient/3"}]
    assert f({"target": refs}) == [refs[0], refs[2]]


def test_expressions_outside_the_subset_are_refused_not_guessed() -> None:
    assert compile_path("Patient", "Patient.name.first()") is None
    assert compile_path("Patient", "Patient.deceased.exists() and Patient.name != false") is None
    assert compile_path("Patient", "Patient.extension(url)") is None


def test_every_parameter_of_the_served_types_with_an_expression_compiles() -> None:
    failing = {
        (t, c) for t, ps in all_params().items() for c, p in ps.items() if p.expression and p.evaluate is None
    }
    assert failing == set()


def test_extension_step_yields_the_values_of_extensions_with_that_url() -> None:
    evaluate = compile_path("Patient", "Patient.extension('http://example.org/a')")
    assert evaluate is not None
    patient = {
        "resourceType": "Patient",
        "extension": [
            {"url": "http://example.org/a", "valueString": "kept"},
            {"url": "http://example.org/b", "valueString": "other"},
        ],
    }
    assert evaluate(patient) == ["kept"]


def test_present_and_not_false_is_one_boolean() -> None:
    evaluate = compile_path("Patient", "Patient.deceased.exists() and Patient.deceased != false")
    assert evaluate is not None
    assert evaluate({"resourceType": "Patient"}) == [False]
    assert evaluate({"resourceType": "Patient", "deceasedBoolean": False}) == [False]
    assert evaluate({"resourceType": "Patient", "deceasedBoolean": True}) == [True]
    assert evaluate({"resourceType": "Patient", "deceasedDateTime": "2021-03-04"}) == [True]
