from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_server.fhir.elements import SUBSETTED_CODE, SUBSETTED_SYSTEM, select_elements, summarize

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "2", "tag": [{"system": "http://example.org/tags", "code": "vip"}]},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Hélène</div>'},
    "name": [{"family": "Durand", "given": ["Hélène"]}],
    "gender": "female",
    "birthDate": "1970-01-01",
    "_birthDate": {
        "extension": [{"url": "http://example.org/time", "valueDateTime": "1970-01-01T10:00:00Z"}]
    },
    "deceasedBoolean": False,
    "photo": [{"contentType": "image/png", "data": "AAAA"}],
    "contact": [{"name": {"family": "Durand"}}],
}
CLAIM: dict[str, Any] = {
    "resourceType": "Claim",
    "id": "c1",
    "status": "active",
    "type": {"coding": [{"code": "oral"}]},
    "use": "claim",
    "patient": {"reference": "Patient/p1"},
    "created": "2024-01-01",
    "provider": {"reference": "Organization/o1"},
    "priority": {"coding": [{"code": "normal"}]},
    "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c"}}],
    "item": [{"sequence": 1}],
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">claim</div>'},
}


def _is_subsetted(resource: dict[str, Any]) -> bool:
    tags = resource.get("meta", {}).get("tag", [])
    return {"system": SUBSETTED_SYSTEM, "code": SUBSETTED_CODE} in [
        {"system": t.get("system"), "code": t.get("code")} for t in tags
    ]


def test_summary_true_keeps_summary_elements_and_their_primitive_extensions() -> None:
    out = summarize(PATIENT, "true")
    assert set(out) == set(PATIENT) - {"text", "photo", "contact"}
    assert _is_subsetted(out)
    assert {"system": "http://example.org/tags", "code": "vip"} in out["meta"]["tag"]


def test_summary_true_keeps_mandatory_elements() -> None:
    out = summarize(CLAIM, "true")
    assert {"status", "type", "use", "patient", "created", "provider", "priority", "insurance"} <= set(out)
    assert "item" not in out and "text" not in out


def test_summary_text_keeps_narrative_and_mandatory_elements_only() -> None:
    assert set(summarize(PATIENT, "text")) == {"resourceType", "id", "meta", "text"}
    claim = summarize(CLAIM, "text")
    assert set(claim) == {
        "resourceType", "id", "meta", "text", "status", "type", "use", "patient", "created", "provider",
        "priority", "insurance",
    }  # fmt: skip
    assert _is_subsetted(claim)


def test_summary_data_drops_only_the_narrative() -> None:
    out = summarize(PATIENT, "data")
    assert set(out) == set(PATIENT) - {"text"}
    assert _is_subsetted(out)


def test_summary_false_and_complete_results_are_not_tagged() -> None:
    assert summarize(PATIENT, "false") == PATIENT
    bare = {"resourceType": "Patient", "id": "p2", "gender": "male"}
    assert summarize(bare, "true") == bare
    assert summarize(bare, "data") == bare


def test_subsetted_tag_is_added_once_and_meta_created_when_missing() -> None:
    once = summarize(PATIENT, "true")
    twice = summarize(once | {"photo": []}, "true")
    assert [t["code"] for t in twice["meta"]["tag"]].count(SUBSETTED_CODE) == 1
    out = summarize({"resourceType": "Patient", "id": "p3", "photo": []}, "true")
    assert out["meta"]["tag"][0]["code"] == SUBSETTED_CODE


def test_unknown_summary_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        summarize(PATIENT, "count")


def test_elements_keeps_listed_and_mandatory_elements() -> None:
    out = select_elements(PATIENT, ["gender", "Patient.birthDate"])
    assert set(out) == {"resourceType", "id", "meta", "gender", "birthDate", "_birthDate"}
    assert _is_subsetted(out)
    claim = select_elements(CLAIM, ["item"])
    assert {"item", "status", "patient", "insurance"} <= set(claim)
    assert "text" not in claim


def test_elements_accepts_choice_base_names_and_ignores_other_types() -> None:
    assert "deceasedBoolean" in select_elements(PATIENT, ["deceased"])
    assert "deceasedBoolean" in select_elements(PATIENT, ["deceased[x]"])
    assert "deceasedBoolean" in select_elements(PATIENT, ["deceasedBoolean"])
    assert "gender" not in select_elements(PATIENT, ["Observation.gender"])


def test_elements_with_a_nested_path_keeps_the_whole_top_level_element() -> None:
    out = select_elements(PATIENT, ["Patient.name.family"])
    assert out["name"] == PATIENT["name"]


def test_input_is_never_modified() -> None:
    before = copy.deepcopy(PATIENT)
    summarize(PATIENT, "true")
    summarize(PATIENT, "text")
    summarize(PATIENT, "data")
    select_elements(PATIENT, ["gender"])
    assert before == PATIENT
