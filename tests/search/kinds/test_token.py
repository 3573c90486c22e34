"""Token side fields (:text, :of-type) and :not, beside the main-field tests in tests/search/test_token.py."""

from __future__ import annotations

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import token

from .conftest import MakeStore

MRN = {
    "system": "urn:oid:1.2.250",
    "value": "446053",
    "type": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}],
        "text": "Dossier",
    },
}
HEADACHE = {
    "coding": [{"system": "http://snomed.info/sct", "code": "25064002", "display": "Headache"}],
    "text": "Céphalée de tension",
}


def test_extract_side_fields() -> None:
    fields = token.extract([MRN, HEADACHE], False)
    assert fields["of-type"] == ["http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053"]
    assert fields["text"] == ["cephalee de tension", "de tension", "dossier", "headache", "tension"]
    assert "urn:oid:1.2.250|446053" in fields[""] and "446053" in fields[""]


def test_single_bare_code_is_a_scalar() -> None:
    assert token.extract(["female"], True) == {"": "female"}
    assert token.extract([False], True) == {"": "false"}
    assert token.extract([None, 3], False) == {}
    assert token.sort_key([HEADACHE, "abc"]) == "25064002"


def test_compile_modifiers() -> None:
    assert token.compile("idx.c", "male", "not", "c", True) == {"idx.c": {"$ne": "male"}}
    assert token.compile("idx.c", "a.b|", "not", "c", True) == {"idx.c": {"$not": {"$regex": r"^a\.b\|"}}}
    assert token.compile("idx.c", "Céph", "text", "c", False) == {"idx.c:text": {"$regex": "^ceph"}}
    assert token.compile("idx.c", "s|MR|1", "of-type", "c", False) == {"idx.c:of-type": "s|MR|1"}


@pytest.mark.parametrize(
    ("value", "modifier"),
    [("s|MR", "of-type"), ("|MR|1", "of-type"), ("a|b|c", ""), ("x", "in"), ("x", "below"), ("|", "not")],
)
def test_bad_values_and_unsupported_modifiers_are_400(value: str, modifier: str) -> None:
    with pytest.raises(BadRequest):
        token.compile("idx.c", value, modifier, "code", False)


async def test_not_is_the_negation_over_the_set_and_includes_missing(make_store: MakeStore) -> None:
    find = await make_store(
        token, {"both": [HEADACHE, {"coding": [{"code": "x"}]}], "headache": [HEADACHE], "none": []}, False
    )
    assert await find("http://snomed.info/sct|25064002", "not") == {"none"}
    assert await find("x", "not") == {"headache", "none"}
    assert await find("http://snomed.info/sct|", "not") == {"none"}
    assert await find("tension", "text") == {"both", "headache"}
    assert await find("headache", "text") == {"both", "headache"}
