"""The condition a search is led by: the one an index answers and that selects the fewest resources."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.search.plan import choose_lead
from fhir_server.storage.lead import literal_prefix

_MANY = {"comp": {"$in": [f"p{i}" for i in range(2500)]}}
_PATIENT = {"idx.patient": {"$in": ["Patient/p1", "Group/p1"]}}


def test_a_patient_leads_over_a_document_type_and_a_policy() -> None:
    filt = {"$and": [_PATIENT, {"idx.type": "http://loinc.org|11488-4"}, _MANY]}
    assert choose_lead("DocumentReference", filt) == _PATIENT


def test_a_name_prefix_leads_over_a_policy_of_thousands_of_patients() -> None:
    filt = {"$and": [{"idx.family": {"$regex": "^lef"}}, _MANY]}
    assert choose_lead("Patient", filt) == {"idx.family": {"$gte": "lef", "$lt": "leg"}}


def test_a_policy_leads_over_a_one_sided_date() -> None:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    filt = {"$and": [{"idx.date.lo": {"$gte": day}}, _MANY]}
    assert choose_lead("DocumentReference", filt) == _MANY


def test_an_id_leads_over_everything() -> None:
    filt = {"$and": [{"_id": "x"}, _PATIENT]}
    assert choose_lead("DocumentReference", filt) == {"_id": "x"}


def test_two_bounds_lead_with_one() -> None:
    # On a multikey field the two bounds may hold for different values: the lead keeps one.
    low, high = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    filt = {"idx.date.lo": {"$gte": low, "$lt": high}}
    assert choose_lead("DocumentReference", filt) == {"idx.date.lo": {"$gte": low}}


def test_negations_unanchored_patterns_and_unindexed_fields_do_not_lead() -> None:
    assert choose_lead("Patient", {"idx.family": {"$ne": "x"}}) is None
    assert choose_lead("Patient", {"idx.family": {"$regex": "ef"}}) is None
    assert choose_lead("Patient", {"res.name": "x"}) is None
    assert choose_lead("Patient", {"$or": [{"_id": "a"}, {"_id": "b"}]}) is None


def test_literal_prefix_stops_at_the_first_pattern_character() -> None:
    assert literal_prefix("^dup\\-x") == "dup-x"
    assert literal_prefix("^ab*") == "a"
    assert literal_prefix("^ab\\d") == "ab"
    assert literal_prefix("ab") == ""
