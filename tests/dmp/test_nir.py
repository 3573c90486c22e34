"""NIR keys and consistency, including Corsica."""

from __future__ import annotations

import pytest

from fhir_server.dmp.nir import InvalidNir, nir_key, parse_nir, with_key


def test_key_is_97_minus_the_number_mod_97() -> None:
    body = "1800175108123"
    assert nir_key(body) == f"{97 - int(body) % 97:02d}"
    assert parse_nir(with_key(body)).gender == "male"


def test_corsica_departments_count_as_19_and_18() -> None:
    assert nir_key("280042A012345") == f"{97 - 2800419012345 % 97:02d}"
    assert nir_key("280042B012345") == f"{97 - 2800418012345 % 97:02d}"
    nir = parse_nir(with_key("280042B012345"))
    assert nir.gender == "female" and nir.birth_year == "80" and nir.birth_month == 4


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("18001751081", "15 characters"),
        ("5800175108123" + "00", "sex digit"),
        ("1801375108123" + nir_key("1801375108123"), "month of birth"),
        ("1800175108123" + "00", "key"),
        ("18001751X8123" + "00", "only digits"),
    ],
)
def test_bad_numbers_say_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidNir, match=reason):
        parse_nir(value)


def test_mismatches_with_gender_and_birth_date() -> None:
    nir = parse_nir(with_key("2800475108123"))
    assert nir.mismatches("female", "1980-04-12") == []
    assert nir.mismatches("female", "1980") == []
    problems = nir.mismatches("male", "1981-05-12")
    assert len(problems) == 3
    # Unknown month (20-42, 50-99) matches any month.
    assert parse_nir(with_key("2805075108123")).mismatches("female", "1980-11-02") == []
