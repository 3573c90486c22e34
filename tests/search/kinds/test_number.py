"""Number index values and the R4 precision rules, checked against a real MongoDB-wire server."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import number

from .conftest import MakeStore

TARGETS: dict[str, list[Any]] = {
    "100": [100],
    "99.5": [99.5],
    "100.5": [100.5],
    "99.4": ["99.4"],  # a decimal kept as a string
    "150": [150.0],
    "49.9": [49.9],
}

EXPECTED = {
    # Implicit precision: 3 significant figures, so [99.5, 100.5).
    "100": {"100", "99.5"},
    "eq100": {"100", "99.5"},
    "100.00": {"100"},
    # One significant figure: [50, 150).
    "1e2": {"100", "99.5", "100.5", "99.4"},
    "1.00e2": {"100", "99.5"},
    "ne100": {"100.5", "99.4", "150", "49.9"},
    # Comparisons use the exact value.
    "gt100": {"100.5", "150"},
    "ge100": {"100", "100.5", "150"},
    "lt100": {"99.5", "99.4", "49.9"},
    "le100": {"100", "99.5", "99.4", "49.9"},
    "sa100": {"100.5", "150"},
    "eb100": {"99.5", "99.4", "49.9"},
    "gt99.99": {"100", "100.5", "150"},
    # Within 10%: [90, 110].
    "ap100": {"100", "99.5", "100.5", "99.4"},
    "-5": set(),
    "ge-1e3": set(TARGETS),
}


@pytest.mark.parametrize("single", [True, False])
async def test_prefixes_and_precision(make_store: MakeStore, single: bool) -> None:
    find = await make_store(number, TARGETS, single)
    for query, expected in EXPECTED.items():
        assert await find(query) == expected, query


async def test_a_range_holds_for_one_element_of_an_array(make_store: MakeStore) -> None:
    # 99 and 101 straddle [99.5, 100.5) without either being in it.
    find = await make_store(number, {"pair": [99, 101]}, False)
    assert await find("100") == set()
    assert await find("ap100") == {"pair"}
    assert await find("ne100") == {"pair"}
    assert await find("ap1000") == set()


def test_extract_keeps_numbers_only() -> None:
    assert number.extract([3, 1.5, "2.25", True, "x", None, {"value": 1}], False) == {"": [1.5, 2.25, 3.0]}
    assert number.extract([7], True) == {"": 7.0}
    assert number.extract([], True) == {}
    assert number.sort_key([3, "2.5"]) == 2.5


def test_compiled_forms() -> None:
    assert number.compile("idx.n", "100", "", "n", True) == {"idx.n": {"$gte": 99.5, "$lt": 100.5}}
    assert number.compile("idx.n", "100", "", "n", False) == {
        "idx.n": {"$elemMatch": {"$gte": 99.5, "$lt": 100.5}}
    }
    assert number.compile("idx.n", "ne100", "", "n", False) == {
        "$or": [{"idx.n": {"$lt": 99.5}}, {"idx.n": {"$gte": 100.5}}]
    }
    assert number.compile("idx.n", "gt0.8", "", "n", False) == {"idx.n": {"$gt": 0.8}}
    # ap0 still has the implied precision around zero.
    assert number.compile("idx.n", "ap0", "", "n", True) == {"idx.n": {"$gte": -0.5, "$lte": 0.5}}


@pytest.mark.parametrize(
    "value", ["", "abc", "xx100", "NaN", "Infinity", "1,5", "1.", ".5", "ge", "1e", "100|mg"]
)
def test_malformed_values_are_400(value: str) -> None:
    with pytest.raises(BadRequest) as err:
        number.compile("idx.n", value, "", "probability", True)
    assert err.value.issues[0].expression == "probability"


def test_modifiers_are_400() -> None:
    with pytest.raises(BadRequest):
        number.compile("idx.n", "1", "missingx", "n", True)
