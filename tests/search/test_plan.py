"""The condition a search is led by: the one an index answers and that selects the fewest resources."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.search.plan import choose_lead, cut_compartments
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


def _comp_lists(node: object) -> list[list[str]]:
    """Every ``comp $in`` list of a filter."""
    if isinstance(node, list):
        return [found for part in node for found in _comp_lists(part)]
    if not isinstance(node, dict):
        return []
    out = [node["comp"]["$in"]] if isinstance(node.get("comp"), dict) else []
    return out + [found for k, v in node.items() if k.startswith("$") for found in _comp_lists(v)]


def test_a_patient_of_the_query_cuts_the_policys_patient_list_to_itself() -> None:
    # The lists of a masking rule ($or) are cut too: every match is in p1's compartment.
    policy = {"$or": [{"labels": {"$ne": "MASKED"}}, {"comp": {"$in": ["p7", "p1"]}}]}
    filt = {"$and": [_PATIENT, {"idx.type": "http://loinc.org|11488-4"}, _MANY, policy]}
    assert _comp_lists(cut_compartments("DocumentReference", filt)) == [["p1"], ["p1"]]


def test_absolute_references_to_this_server_name_the_same_patient() -> None:
    filt = {"$and": [{"idx.patient": {"$in": ["Patient/p2", "http://h/fhir/Patient/p2"]}}, _MANY]}
    assert _comp_lists(cut_compartments("ExplanationOfBenefit", filt)) == [["p2"]]


def test_a_patient_id_cuts_a_patient_search() -> None:
    assert _comp_lists(cut_compartments("Patient", {"$and": [{"_id": "p3"}, _MANY]})) == [["p3"]]


def test_no_cut_when_the_queried_patient_is_not_listed() -> None:
    # Matches in p1's compartment may still be listed through another patient (a co-author): the
    # list must stay whole.
    filt = {"$and": [_PATIENT, {"comp": {"$in": ["p2", "p3"]}}]}
    assert cut_compartments("DocumentReference", filt) == filt


def test_no_cut_through_a_reference_that_need_not_be_a_patient() -> None:
    # AllergyIntolerance.patient may hold a Group, whose members' compartments are not the Group's.
    filt = {"$and": [{"idx.patient": {"$in": ["Patient/p1", "Group/g1"]}}, _MANY]}
    assert cut_compartments("AllergyIntolerance", filt) == filt
    # DocumentReference.patient holds Patients only: its Group form can match nothing.
    assert _comp_lists(cut_compartments("DocumentReference", {"$and": [_PATIENT, _MANY]})) == [["p1"]]


def test_no_cut_through_a_condition_that_not_every_match_satisfies() -> None:
    filt = {"$and": [{"$or": [_PATIENT, {"idx.type": "x"}]}, _MANY]}
    assert cut_compartments("DocumentReference", filt) == filt
    negated = {"$and": [{"idx.patient": {"$ne": "Patient/p1"}}, _MANY]}
    assert cut_compartments("DocumentReference", negated) == negated
