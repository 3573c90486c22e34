"""Reference index values (``Type/id``, absolute URLs, canonicals, identifiers) and compile_reference."""

from __future__ import annotations

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import reference

from .conftest import MakeStore

BASE = "http://example.org/fhir"
TARGETS = ("Group", "Patient")


def test_extract_normalises_references() -> None:
    values = [
        {"reference": "Patient/1/_history/2"},
        {"reference": "#contained"},
        {"reference": "http://other.org/fhir/Patient/9/_history/1"},
        {"identifier": {"system": "urn:oid:1.2.250", "value": "123"}, "display": "no literal reference"},
        "http://acme.com/some-profile|1.0",
    ]
    assert reference.extract(values, False) == {
        "": [
            "Patient/1",
            "http://acme.com/some-profile",
            "http://acme.com/some-profile|1.0",
            "http://other.org/fhir/Patient/9",
        ],
        "identifier": ["123", "urn:oid:1.2.250|123"],
    }
    assert reference.extract([{"reference": "Patient/1"}], True) == {"": "Patient/1"}
    assert reference.sort_key([{"reference": "Patient/2"}, {"reference": "Group/1"}]) == "Group/1"


def test_compile_forms() -> None:
    def c(value: str, modifier: str = "") -> object:
        return reference.compile_reference("idx.s", value, modifier, "subject", TARGETS, BASE)

    local = {"idx.s": {"$in": ["Patient/23", f"{BASE}/Patient/23"]}}
    assert c("Patient/23") == local
    assert c("Patient/23/_history/4") == local
    assert c(f"{BASE}/Patient/23") == local
    assert c("23", "Patient") == local
    assert c("Patient/23", "Patient") == local
    assert c("23") == {"idx.s": {"$in": ["Group/23", "Patient/23", f"{BASE}/Group/23", f"{BASE}/Patient/23"]}}
    assert c("http://other.org/fhir/Patient/9") == {"idx.s": "http://other.org/fhir/Patient/9"}
    assert c("urn:oid:1.2.250|123", "identifier") == {"idx.s:identifier": "urn:oid:1.2.250|123"}


@pytest.mark.parametrize(
    ("value", "modifier"), [("", ""), ("23", "Device"), ("23", "patient"), ("a/b", "Patient"), ("x", "below")]
)
def test_bad_values_and_modifiers_are_400(value: str, modifier: str) -> None:
    with pytest.raises(BadRequest):
        reference.compile_reference("idx.s", value, modifier, "subject", TARGETS, BASE)


def test_compile_without_targets_and_base_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        reference.compile("idx.s", "Patient/1", "", "subject", True)


async def test_round_trip(make_store: MakeStore) -> None:
    docs = {
        "rel": [{"reference": "Patient/23"}],
        "abs": [{"reference": f"{BASE}/Patient/23"}],
        "group": [{"reference": "Group/23"}],
        "canon": ["http://acme.com/some-profile|1.0"],
    }
    find = await make_store(_Bound, docs, True)
    assert await find("Patient/23") == {"rel", "abs"}
    assert await find("23") == {"rel", "abs", "group"}
    assert await find("http://acme.com/some-profile") == {"canon"}
    assert await find("http://acme.com/some-profile|1.0") == {"canon"}
    assert await find("http://acme.com/some-profile|2.0") == set()


class _Bound:
    """The reference kind with this test's targets and base bound, shaped like the other kinds."""

    extract = staticmethod(reference.extract)

    @staticmethod
    def compile(field: str, value: str, modifier: str, name: str, single: bool) -> object:
        return reference.compile_reference(field, value, modifier, name, TARGETS, BASE)
