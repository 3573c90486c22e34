"""Quantity index values: number rules plus units on the same stored value, against a real database."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import quantity

from .conftest import MakeStore

UCUM = "http://unitsofmeasure.org"
TARGETS: dict[str, list[Any]] = {
    "mg": [{"value": 5.4, "system": UCUM, "code": "mg", "unit": "milligram"}],
    "unit-only": [{"value": 5.4, "unit": "mg"}],
    "g": [{"value": 5.4, "system": UCUM, "code": "g"}],
    "10mg": [{"value": 10, "system": UCUM, "code": "mg"}],
    "money": [{"value": 5.4, "currency": "EUR"}],
}

EXPECTED = {
    f"5.4|{UCUM}|mg": {"mg"},
    "5.4||mg": {"mg", "unit-only"},
    "5.4||milligram": {"mg"},
    "5.4": {"mg", "unit-only", "g", "money"},
    f"5.40e-3|{UCUM}|g": set(),
    f"gt5|{UCUM}|mg": {"mg", "10mg"},
    f"le5.4|{UCUM}|mg": {"mg"},
    f"ne5.4|{UCUM}|mg": {"10mg"},
    f"ap5|{UCUM}|mg": {"mg"},
    f"5.4|{UCUM}|": {"mg", "g"},
    "5.4|urn:iso:std:iso:4217|EUR": {"money"},
    "5.4||": {"mg", "unit-only", "g", "money"},
}


@pytest.mark.parametrize("single", [True, False])
async def test_value_and_units(make_store: MakeStore, single: bool) -> None:
    find = await make_store(quantity, TARGETS, single)
    for query, expected in EXPECTED.items():
        assert await find(query) == expected, query


async def test_value_and_unit_must_hold_for_the_same_quantity(make_store: MakeStore) -> None:
    mixed = [{"value": 5.4, "system": UCUM, "code": "g"}, {"value": 10, "system": UCUM, "code": "mg"}]
    find = await make_store(quantity, {"mixed": mixed}, False)
    assert await find(f"5.4|{UCUM}|mg") == set()
    assert await find(f"ne10|{UCUM}|mg") == set()
    assert await find(f"ne10|{UCUM}|g") == {"mixed"}
    assert await find("5.4||g") == {"mixed"}


def test_extract() -> None:
    assert quantity.extract(
        [{"value": 3, "unit": "a", "comparator": "<"}, {"unit": "no value"}, 4], True
    ) == {"": {"v": 3.0, "u": "a"}}
    assert quantity.extract([{"value": 1, "currency": "EUR"}], False) == {
        "": [{"v": 1.0, "s": "urn:iso:std:iso:4217", "c": "EUR"}]
    }
    assert quantity.sort_key([{"value": 3}, {"value": 2, "code": "x"}]) == 2.0


def test_unit_parts_are_unescaped_and_literal() -> None:
    assert quantity.compile("idx.q", r"1|s\|x|$ne", "", "q", True) == {
        "idx.q.v": {"$gte": 0.5, "$lt": 1.5},
        "idx.q.s": "s|x",
        "idx.q.c": "$ne",
    }


@pytest.mark.parametrize("value", ["", "mg", "5.4|mg", "5.4|a|b|c", "x5|s|c", "|s|c"])
def test_malformed_values_are_400(value: str) -> None:
    with pytest.raises(BadRequest) as err:
        quantity.compile("idx.q", value, "", "value-quantity", False)
    assert err.value.issues[0].expression == "value-quantity"
