"""URI parameters: exact by default, :below as an anchored prefix, :above over the value's ancestors."""

from __future__ import annotations

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import uri

from .conftest import MakeStore

VS = "http://acme.org/fhir/ValueSet/123"


def test_ancestors_are_cut_at_slashes_after_the_authority() -> None:
    assert uri.ancestors(VS + "/_history/5") == [
        "http://acme.org",
        "http://acme.org/",
        "http://acme.org/fhir",
        "http://acme.org/fhir/",
        "http://acme.org/fhir/ValueSet",
        "http://acme.org/fhir/ValueSet/",
        VS,
        VS + "/",
        VS + "/_history",
        VS + "/_history/",
        VS + "/_history/5",
    ]
    assert uri.ancestors("urn:oid:1.2.3") == ["urn:oid:1.2.3"]


def test_compiled_forms() -> None:
    assert uri.compile("idx.u", VS, "", "url", True) == {"idx.u": VS}
    assert uri.compile("idx.u", "http://a.org/x.y", "below", "url", True) == {
        "idx.u": {"$regex": r"^http://a\.org/x\.y"}
    }
    # URNs are not hierarchical: :below and :above match them exactly.
    assert uri.compile("idx.u", "urn:oid:1.2", "below", "url", True) == {"idx.u": "urn:oid:1.2"}
    assert uri.extract(["b", "a", 1], False) == {"": ["a", "b"]}
    assert uri.extract(["a"], True) == {"": "a"}


@pytest.mark.parametrize(("value", "modifier"), [("", ""), ("x", "contains"), ("x", "not")])
def test_bad_values_are_400(value: str, modifier: str) -> None:
    with pytest.raises(BadRequest):
        uri.compile("idx.u", value, modifier, "url", True)


async def test_round_trip(make_store: MakeStore) -> None:
    find = await make_store(
        uri, {"vs": [VS], "root": ["http://acme.org/fhir/"], "oid": ["urn:oid:1.2.3"]}, True
    )
    assert await find(VS) == {"vs"}
    assert await find("http://acme.org/fhir/", "below") == {"vs", "root"}
    assert await find(VS + "/_history/5", "above") == {"vs", "root"}
    assert await find("urn:oid:1.2", "below") == set()
