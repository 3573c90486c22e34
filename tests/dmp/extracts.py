"""Small flat extracts for the import tests: valid NIRs, lines dated relative to today."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from fhir_server.dmp import systems
from fhir_server.dmp.extract import COLUMNS
from fhir_server.dmp.nir import with_key

HEADER = ";".join(COLUMNS)
_rng = random.Random(7)


def new_nir(sex: str = "1", year: int = 80, month: int = 4) -> str:
    """A NIR no other test uses (random order number and commune)."""
    return with_key(f"{sex}{year:02d}{month:02d}75{_rng.randint(100, 999)}{_rng.randint(100, 999)}")


def insured(nir: str) -> dict[str, Any]:
    """A Patient (a DMP) with this NIR as its INS, consistent with its sex and birth date."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": systems.INS_NIR, "value": nir, "use": "official"}],
        "name": [{"family": "Durand", "given": ["Élise"]}],
        "gender": "male" if nir[0] in "137" else "female",
        "birthDate": f"19{nir[1:3]}-{nir[3:5]}-15",
    }


def line(
    nir: str,
    invoice: str,
    n: int = 1,
    days_ago: int = 30,
    system: str = "NGAP",
    code: str = "G",
    label: str = "Consultation de médecine générale",
    quantity: int = 1,
    amounts: tuple[str, str, str] = ("30.00", "19.00", "11.00"),
    performer: tuple[str, str] = ("10000000001", "PS"),
    prescriber: str = "",
) -> str:
    """One CSV line (paid three days after the care)."""
    care = date.today() - timedelta(days=days_ago)
    paid = care + timedelta(days=min(3, days_ago))
    fields = [
        nir, invoice, str(n), care.isoformat(), paid.isoformat(), prescriber, performer[0], performer[1],
        system, code, label, str(quantity), *amounts,
    ]  # fmt: skip
    return ";".join(fields)


def drug(
    nir: str, invoice: str, days_ago: int, n: int = 1, cip: str = "3400930950289", quantity: int = 1
) -> str:
    """A pharmacy line: a box of paracetamol delivered by a pharmacy (an establishment)."""
    return line(
        nir, invoice, n, days_ago, "CIP13", cip, "Paracétamol 1000 mg, boîte de 8", quantity,
        ("1.16", "0.75", "0.41"), ("750000001", "ETAB"), "10000000002",
    )  # fmt: skip


def extract(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"
