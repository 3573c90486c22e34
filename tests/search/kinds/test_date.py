"""Date index ranges and the R4 prefix semantics, checked against a real MongoDB-wire server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import date

from .conftest import MakeStore

# One value per resource: works for both single (scalar) and array storage.
TARGETS: dict[str, list[Any]] = {
    "day": ["2024-03-15"],
    "tz": ["2024-03-15T10:00:00+02:00"],  # 08:00Z
    "month": ["2024-03"],
    "year": ["2024"],
    "from-10-mar": [{"start": "2024-03-10"}],
    "to-20-feb": [{"end": "2024-02-20"}],
    "feb-mar": [{"start": "2024-02-28", "end": "2024-03-02"}],
    "instant": ["2024-04-01T00:00:00.000Z"],
}

EXPECTED = {
    "eq2024-03": {"day", "tz", "month"},
    "2024-03": {"day", "tz", "month"},
    "ne2024-03": {"year", "from-10-mar", "to-20-feb", "feb-mar", "instant"},
    "gt2024-03": {"year", "from-10-mar", "instant"},
    "lt2024-03": {"year", "to-20-feb", "feb-mar"},
    "ge2024-03": {"day", "tz", "month", "year", "from-10-mar", "instant"},
    "le2024-03": {"day", "tz", "month", "year", "to-20-feb", "feb-mar"},
    "sa2024-02": {"day", "tz", "month", "from-10-mar", "instant"},
    "eb2024-03": {"to-20-feb"},
    "eb2024-03-03": {"to-20-feb", "feb-mar"},
    "sa2024-03-09": {"day", "tz", "from-10-mar", "instant"},
    "eq2024-03-15": {"day", "tz"},
    "gt2024-03-15": {"month", "year", "from-10-mar", "instant"},
    "eq2024-03-15T10:00+02:00": {"tz"},
    "eq2024-03-15T08:00:00Z": {"tz"},
    "2024-03-15T09:00:00+02:00": set(),
    "lt2024-03-15T08:00:00Z": {"day", "month", "year", "from-10-mar", "to-20-feb", "feb-mar"},
    "eq2024": {"day", "tz", "month", "year", "feb-mar", "instant"},
    "ap1990-01-01": {"to-20-feb"},  # an open start overlaps every earlier date
}


@pytest.mark.parametrize("single", [True, False])
async def test_prefixes_follow_the_r4_range_semantics(make_store: MakeStore, single: bool) -> None:
    find = await make_store(date, TARGETS, single)
    for query, expected in EXPECTED.items():
        assert await find(query) == expected, query


async def test_conditions_hold_for_one_element_of_an_array(make_store: MakeStore) -> None:
    # Neither value lies in March: a per-field match across the two elements would wrongly say eq.
    find = await make_store(date, {"jan-and-may": ["2024-01-10", "2024-05-20"]}, False)
    assert await find("eq2024-03") == set()
    assert await find("ne2024-03") == {"jan-and-may"}
    assert await find("gt2024-03") == {"jan-and-may"}
    assert await find("lt2024-03") == {"jan-and-may"}
    assert await find("sa2024-03") == {"jan-and-may"}
    assert await find("eb2024-03") == {"jan-and-may"}


async def test_approximate_needs_one_element_near_the_value(make_store: MakeStore) -> None:
    find = await make_store(date, {"far-apart": ["1990-01-01", "2100-01-01"], "near": ["2000-01-03"]}, False)
    # ap2000-01-01 from today widens by ~2.5 years: neither 1990 nor 2100 is close, but a pair of
    # per-field conditions (lo before the end, hi after the start) would be met by the two together.
    assert await find("ap2000-01-01") == {"near"}


async def test_timezone_offsets_are_compared_in_utc(make_store: MakeStore) -> None:
    # 01:00 on the 16th at +14:00 is 11:00Z on the 15th.
    find = await make_store(date, {"kiribati": ["2024-03-16T01:00:00+14:00"]}, True)
    assert await find("2024-03-15") == {"kiribati"}
    assert await find("2024-03-16") == set()
    assert await find("2024-03-15T11:00:00Z") == {"kiribati"}


async def test_an_unencoded_plus_in_an_offset_is_read_as_plus(make_store: MakeStore) -> None:
    find = await make_store(date, {"tz": ["2024-03-15T10:00:00+02:00"]}, True)
    assert await find("2024-03-15T10:00:00 02:00") == {"tz"}


async def test_timing_is_its_outer_limits(make_store: MakeStore) -> None:
    timing = {
        "event": ["2024-01-31"],
        "repeat": {"boundsPeriod": {"start": "2024-02-02", "end": "2024-03-24"}},
    }
    find = await make_store(date, {"every-2-days": [timing]}, True)
    assert await find("eq2024-02-01") == set()  # the envelope is wider than one day
    assert await find("ap2024-02-01") == {"every-2-days"}
    assert await find("sa2024-01-30") == {"every-2-days"}
    assert await find("eb2024-03-25") == {"every-2-days"}
    assert await find("eb2024-03-24") == set()


def test_extract_stores_millisecond_ranges_and_open_period_ends() -> None:
    stored = date.extract(["2024-03-15T10:00:00.1234Z", {"start": "2024-03-10"}], False)[""]
    assert stored == [
        {"lo": datetime(2024, 3, 10, tzinfo=UTC), "hi": date.LATEST},
        {
            "lo": datetime(2024, 3, 15, 10, 0, 0, 123000, tzinfo=UTC),
            "hi": datetime(2024, 3, 15, 10, 0, 0, 124000, tzinfo=UTC),
        },
    ]
    assert date.extract([{"end": "2024"}], True) == {
        "": {"lo": date.EARLIEST, "hi": datetime(2025, 1, 1, tzinfo=UTC)}
    }
    assert date.extract([42, {"use": "x"}], False) == {}


def test_single_storage_is_a_scalar_and_refuses_several_values() -> None:
    assert isinstance(date.extract(["2024"], True)[""], dict)
    with pytest.raises(ValueError):
        date.extract(["2024", "2025"], True)


def test_sort_key_is_the_earliest_start() -> None:
    assert date.sort_key(["2024-05", {"start": "2023-01-02"}]) == datetime(2023, 1, 2, tzinfo=UTC)
    assert date.sort_key([]) is None


def test_single_uses_dotted_paths_and_arrays_elem_match() -> None:
    lo, hi = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)
    assert date.compile("idx.d", "2024-03", "", "d", True) == {
        "idx.d.lo": {"$gte": lo},
        "idx.d.hi": {"$lte": hi},
    }
    assert date.compile("idx.d", "2024-03", "", "d", False) == {
        "idx.d": {"$elemMatch": {"lo": {"$gte": lo}, "hi": {"$lte": hi}}}
    }
    assert date.compile("idx.d", "sa2024-03", "", "d", False) == {"idx.d.lo": {"$gte": hi}}


def test_approximate_widens_by_a_tenth_of_the_gap_to_now() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    lo, hi = datetime(2014, 1, 1, tzinfo=UTC), datetime(2014, 1, 2, tzinfo=UTC)
    margin = (now - hi) / 10
    assert date._approximate(lo, hi, now) == (lo - margin, hi + margin)
    # Around now, at least a day each side.
    assert date._approximate(now, now + timedelta(days=1), now) == (
        now - timedelta(days=1),
        now + timedelta(days=2),
    )
    # Never past the representable ends.
    assert date._approximate(date.EARLIEST, hi, now)[0] == date.EARLIEST


@pytest.mark.parametrize(
    "value", ["", "xx2024", "2024-13", "2024-02-30", "14-03-2024", "gt", "2024-03-15T10"]
)
def test_malformed_values_are_400_naming_the_parameter(value: str) -> None:
    with pytest.raises(BadRequest) as err:
        date.compile("idx.d", value, "", "birthdate", True)
    assert err.value.issues[0].expression == "birthdate"


def test_modifiers_are_400() -> None:
    with pytest.raises(BadRequest):
        date.compile("idx.d", "2024", "exact", "d", True)
