"""The professionals and organizations of the synthetic DMP, shared by all patients.

Each city in use gets a hospital, a health centre (maison de santé), a laboratory, an imaging practice,
a pharmacy and an occupational-health service, staffed as :data:`demo_names.STAFF` says (scaled up for
large data sets). Practitioners carry an RPPS (11 digits, Luhn check digit), their profession (TRE_G15)
and, for doctors, their specialty (TRE_R38); organizations a FINESS (9 characters, Luhn check digit).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from fhir_server.dmp import systems
from fhir_server.dmp.demo_names import (
    CITIES,
    FAMILY_NAMES,
    GIVEN_NAMES,
    PROFESSIONS,
    SPECIALTIES,
    STAFF,
    STREETS,
    WORKPLACES,
    City,
)

Json = dict[str, Any]
# One city per this many patients (at least one, at most every city of the list).
PATIENTS_PER_CITY = 25
# Above this many patients per city, each city's staff is multiplied.
PATIENTS_PER_TEAM = 1000


def luhn_digit(digits: str) -> str:
    """The Luhn check digit of a string of digits (RPPS, FINESS)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        doubled = int(char) * (2 - position % 2)
        total += doubled // 10 + doubled % 10
    return str((10 - total % 10) % 10)


def reference(rtype: str, rid: str, display: str | None = None) -> Json:
    """A FHIR Reference to ``rtype/rid``."""
    ref: Json = {"reference": f"{rtype}/{rid}"}
    if display:
        ref["display"] = display
    return ref


def coding(system: str, code: str, display: str) -> Json:
    """A CodeableConcept with one Coding."""
    return {"coding": [{"system": system, "code": code, "display": display}]}


@dataclass(frozen=True)
class Organization:
    id: str
    finess: str
    name: str
    kind: str
    city: City


@dataclass(frozen=True)
class Professional:
    id: str
    role_id: str
    rpps: str
    key: str
    given: str
    family: str
    gender: str
    organization: Organization

    @property
    def name(self) -> str:
        prefix = "Dr " if self.key not in ("pharmacist", "nurse", "physio", "midwife") else ""
        return f"{prefix}{self.given} {self.family}"

    def ref(self) -> Json:
        return reference("Practitioner", self.id, self.name)


class Pools:
    """The organizations and professionals of the cities in use, and their FHIR resources."""

    def __init__(self, seed: int, patients: int, prefix: str) -> None:
        count = min(len(CITIES), max(1, patients // PATIENTS_PER_CITY))
        self.cities = CITIES[:count]
        self.team = max(1, math.ceil(patients / count / PATIENTS_PER_TEAM))
        self._rng = random.Random(f"{seed}:pools")
        self._ids: set[str] = set()
        self.organizations: dict[tuple[int, str], Organization] = {}
        self.staff: dict[tuple[int, str], list[Professional]] = {}
        for c, city in enumerate(self.cities):
            for kind, pattern in WORKPLACES.items():
                finess = self._unique(lambda city=city: city.insee[:2] + self._digits(6))
                org = Organization(
                    f"{prefix}-org-{c:03d}-{kind}", finess, pattern.format(city=city.name), kind, city
                )
                self.organizations[c, kind] = org
            for staff in STAFF:
                self.staff[c, staff.key] = [
                    self._professional(prefix, c, staff.key, n, self.organizations[c, staff.workplace])
                    for n in range(staff.count * self.team)
                ]

    def _digits(self, n: int) -> str:
        return "".join(str(self._rng.randrange(10)) for _ in range(n))

    def _unique(self, draw: Any) -> str:
        """A new identifier with its Luhn check digit, drawn until it is not already used."""
        while True:
            body = draw()
            value = body + luhn_digit(body.replace("A", "1").replace("B", "2"))
            if value not in self._ids:
                self._ids.add(value)
                return value

    def _professional(self, prefix: str, c: int, key: str, n: int, org: Organization) -> Professional:
        gender = self._rng.choice(("female", "male"))
        rpps = self._unique(lambda: "10" + self._digits(8))
        return Professional(
            f"{prefix}-pra-{c:03d}-{key}-{n}",
            f"{prefix}-role-{c:03d}-{key}-{n}",
            rpps,
            key,
            self._rng.choice(GIVEN_NAMES[gender]),
            self._rng.choice(FAMILY_NAMES),
            gender,
            org,
        )

    def pick(self, rng: random.Random, city: int, key: str) -> Professional:
        """One of the ``key`` professionals of ``city``."""
        return rng.choice(self.staff[city, key])

    def resources(self) -> list[Json]:
        """Organizations, then Practitioners, then PractitionerRoles."""
        orgs = [_organization(o, self._rng) for o in self.organizations.values()]
        people = [p for team in self.staff.values() for p in team]
        return orgs + [_practitioner(p) for p in people] + [_role(p) for p in people]


def _address(org: Organization, rng: random.Random) -> Json:
    return {
        "use": "work",
        "line": [f"{rng.randint(1, 80)} {rng.choice(STREETS)}"],
        "city": org.city.name,
        "postalCode": org.city.postal,
        "country": "FR",
    }


def _organization(org: Organization, rng: random.Random) -> Json:
    return {
        "resourceType": "Organization",
        "id": org.id,
        "identifier": [{"system": systems.FINESS, "value": org.finess}],
        "active": True,
        "type": [{"text": org.name.split(" de ")[0].split(",")[0]}],
        "name": org.name,
        "address": [_address(org, rng)],
    }


def _qualifications(key: str) -> list[tuple[str, str, str]]:
    staff = next(s for s in STAFF if s.key == key)
    out = [(systems.PROFESSION, staff.profession, PROFESSIONS[staff.profession])]
    if staff.specialty:
        out.append((systems.SPECIALTY, staff.specialty, SPECIALTIES[staff.specialty]))
    return out


def _practitioner(p: Professional) -> Json:
    name: Json = {"use": "official", "family": p.family, "given": [p.given]}
    if p.name.startswith("Dr "):
        name["prefix"] = ["Dr"]
    return {
        "resourceType": "Practitioner",
        "id": p.id,
        "identifier": [{"system": systems.RPPS, "value": p.rpps}],
        "active": True,
        "name": [name],
        "gender": p.gender,
        "qualification": [{"code": coding(*q)} for q in _qualifications(p.key)],
    }


def _role(p: Professional) -> Json:
    (profession, *specialty) = _qualifications(p.key)
    role: Json = {
        "resourceType": "PractitionerRole",
        "id": p.role_id,
        "active": True,
        "practitioner": p.ref(),
        "organization": reference("Organization", p.organization.id, p.organization.name),
        "code": [coding(*profession)],
    }
    if specialty:
        role["specialty"] = [coding(*specialty[0])]
    return role
