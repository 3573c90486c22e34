"""The NIR (French social-security number), the number behind an INS-NIR or INS-NIA (DOMAIN.md).

Layout of the 13 characters before the 2-digit key: sex (1), year of birth (2), month of birth (2),
birth département (2, ``2A``/``2B`` for Corsica), commune (3), order number (3). The key is
97 − (number mod 97), with Corsica's ``2A`` read as 19 and ``2B`` as 18.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHAPE = re.compile(r"^[1-478]\d{4}(?:\d{2}|2A|2B)\d{6}\d{2}$")
# Sex digit -> administrative gender. 3/4 and 7/8 are provisional numbers.
_GENDER = {"1": "male", "3": "male", "7": "male", "2": "female", "4": "female", "8": "female"}
_CORSICA = {"2A": "19", "2B": "18"}


class InvalidNir(ValueError):
    """A NIR that is malformed or whose key does not match."""


def _numeric(body: str) -> int:
    dept = body[5:7]
    return int(body[:5] + _CORSICA.get(dept, dept) + body[7:])


def nir_key(body: str) -> str:
    """The 2-digit key of the 13-character ``body``."""
    return f"{97 - _numeric(body) % 97:02d}"


def with_key(body: str) -> str:
    """The 15-character NIR: ``body`` followed by its key."""
    return body + nir_key(body)


@dataclass(frozen=True)
class Nir:
    """A checked NIR and what its digits say about the person."""

    value: str

    @property
    def gender(self) -> str:
        return _GENDER[self.value[0]]

    @property
    def birth_year(self) -> str:
        """The last two digits of the year of birth."""
        return self.value[1:3]

    @property
    def birth_month(self) -> int | None:
        """The month of birth, or None when the number says it is unknown (20–42, 50–99)."""
        month = int(self.value[3:5])
        return month if 1 <= month <= 12 else None

    def mismatches(self, gender: str | None, birth_date: str | None) -> list[str]:
        """What in ``gender`` and ``birth_date`` (FHIR values, either may be absent) contradicts it."""
        out: list[str] = []
        if gender in ("male", "female") and gender != self.gender:
            out.append(f"its sex digit {self.value[0]} says {self.gender}, the patient's gender is {gender}")
        if birth_date and len(birth_date) >= 4 and birth_date[2:4] != self.birth_year:
            out.append(f"its year digits {self.birth_year} do not match the birth date {birth_date}")
        month = self.birth_month
        if birth_date and len(birth_date) >= 7 and month is not None and int(birth_date[5:7]) != month:
            out.append(f"its month digits {month:02d} do not match the birth date {birth_date}")
        return out


def parse_nir(value: str) -> Nir:
    """The NIR ``value`` (15 characters, key included); :class:`InvalidNir` saying what is wrong."""
    if not isinstance(value, str) or len(value) != 15:
        raise InvalidNir("an INS is 13 characters and a 2-digit key (15 characters)")
    if not _SHAPE.match(value.upper()):
        raise InvalidNir(
            "an INS starts with a sex digit (1, 2, 3, 4, 7 or 8) and has only digits, "
            "except 2A or 2B as the Corsican département"
        )
    value = value.upper()
    month = int(value[3:5])
    if month == 0 or 13 <= month <= 19 or 43 <= month <= 49:
        raise InvalidNir(f"month of birth {value[3:5]} is not 01–12, 20–42 or 50–99")
    expected = nir_key(value[:13])
    if value[13:] != expected:
        raise InvalidNir(f"the key {value[13:]} does not match the number (expected {expected})")
    return Nir(value)
