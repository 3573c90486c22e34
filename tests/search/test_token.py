"""Token index values and queries: exact strings, escaped and anchored prefixes, never a broader match."""

from __future__ import annotations

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import token


def test_extract_identifier_coding_and_boolean() -> None:
    values = token.extract(
        [
            {"system": "urn:oid:1", "value": "123"},
            {"coding": [{"system": "http://loinc.org", "code": "11488-4"}, {"code": "local"}]},
            True,
            "female",
        ],
        False,
    )[""]
    assert values == sorted(
        {"urn:oid:1|123", "123", "http://loinc.org|11488-4", "11488-4", "|local", "local", "true", "female"}
    )


def test_compile_forms() -> None:
    assert token.compile("idx.x", "123", "", "x", False) == {"idx.x": "123"}
    assert token.compile("idx.x", "urn:oid:1|123", "", "x", False) == {"idx.x": "urn:oid:1|123"}
    assert token.compile("idx.x", "|123", "", "x", False) == {"idx.x": "|123"}
    assert token.compile("idx.x", "a.b|", "", "x", False) == {"idx.x": {"$regex": r"^a\.b\|"}}


def test_escaped_bar_is_part_of_the_code() -> None:
    assert token.compile("idx.x", r"a\|b", "", "x", False) == {"idx.x": "a|b"}


def test_operator_like_values_stay_literal() -> None:
    assert token.compile("idx.x", '{"$ne": 1}', "", "x", False) == {"idx.x": '{"$ne": 1}'}
    assert token.compile("idx.x", "$where", "", "x", False) == {"idx.x": "$where"}


def test_empty_value_is_400() -> None:
    with pytest.raises(BadRequest):
        token.compile("idx.x", "", "", "x", False)
    with pytest.raises(BadRequest):
        token.compile("idx.x", "|", "", "x", False)
