"""String index values: folded starts-with by default, :contains, :exact, names and addresses by part."""

from __future__ import annotations

import pytest

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import string

from .conftest import MakeStore

NAME = {"use": "official", "family": "Carreño Quiñones", "given": ["Hélène", "Marie"], "prefix": ["Dr"]}
ADDRESS = {"use": "home", "line": ["12 rue de l'Église"], "city": "Saint-Étienne", "postalCode": "42000"}


def test_extract_folds_and_keeps_originals() -> None:
    fields = string.extract([NAME], False)
    assert fields["exact"] == ["Carreño Quiñones", "Dr", "Hélène", "Marie"]
    assert fields[""] == ["carreno quinones", "dr", "helene", "marie", "quinones"]
    assert "home" not in string.extract([ADDRESS], False)[""]
    assert string.extract(["Eve"], True) == {"": "eve", "exact": "Eve"}
    assert string.extract([" ", None], True) == {}


def test_sort_key_reads_a_name_in_part_order() -> None:
    assert string.sort_key([NAME]) == "carreno quinones helene marie dr"
    assert string.sort_key([]) is None


def test_compiled_regexes_are_escaped_and_anchored() -> None:
    assert string.compile("idx.n", "a.b*", "", "n", False) == {"idx.n": {"$regex": r"^a\.b\*"}}
    assert string.compile("idx.n", "(x", "contains", "n", False) == {"idx.n": {"$regex": r"\(x"}}
    assert string.compile("idx.n", r"a\,b", "exact", "n", False) == {
        "$and": [{"idx.n": "a,b"}, {"idx.n:exact": "a,b"}]
    }


@pytest.mark.parametrize(
    ("value", "modifier"), [("", ""), ("x" * 1001, ""), ("a\x00", ""), ("   ", ""), ("x", "text")]
)
def test_bad_values_are_400(value: str, modifier: str) -> None:
    with pytest.raises(BadRequest):
        string.compile("idx.n", value, modifier, "name", False)


async def test_round_trip(make_store: MakeStore) -> None:
    find = await make_store(
        string,
        {
            "name": [NAME],
            "address": [ADDRESS],
            "eve": ["Eve"],
            "evelyn": ["Evelyn"],
            "severine": ["Séverine"],
        },
        False,
    )
    assert await find("hel") == {"name"}
    assert await find("HELENE") == {"name"}
    assert await find("quinones") == {"name"}
    assert await find("etienne") == {"address"}
    assert await find("eve") == {"eve", "evelyn"}
    assert await find("eve", "contains") == {"eve", "evelyn", "severine"}
    assert await find("Eve", "exact") == {"eve"}
    assert await find("eve", "exact") == set()
    assert await find("Hélène", "exact") == {"name"}
    assert await find("Helene", "exact") == set()
    assert await find(".*") == set()
