"""MedicationStatements derived from reimbursed pharmacy lines (CIP13 and UCD codes).

One statement per drug and treatment period, not one per box: **(ours)** a box is taken to cover
``SUPPLY_DAYS`` days per unit of ``quantity``, and a dispensation belongs to the current period when it
comes at most ``GAP_DAYS`` after the supply of the previous ones ran out. The period is
``effectivePeriod`` (first dispensation → end of the last supply). Status, per the R4 definitions:
``active`` ("still being taken") while the estimated supply lasts on the day of derivation, else
``completed`` ("no longer being taken"); a later extract derives the periods again. Each statement is
``derivedFrom`` the ExplanationOfBenefit of every dispensation it merges, asserted on the day the last
of them was paid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fhir_server.dmp import systems
from fhir_server.dmp.extract import Row
from fhir_server.dmp.reimbursement import CNAM_ORGANIZATION, derived_id, eob_id, ref

Json = dict[str, Any]
SUPPLY_DAYS = 30
GAP_DAYS = 30
# UCD units are hospital units delivered to outpatients; CIP13 boxes come from community pharmacies.
_CATEGORY = {"CIP13": "community", "UCD": "outpatient"}


@dataclass
class Period:
    """One treatment period of one drug."""

    system: str
    code: str
    label: str
    start: date
    end: date
    # When the Assurance Maladie last learned of it: the latest payment of its dispensations.
    asserted: str = ""
    invoices: set[str] = field(default_factory=set)


def is_pharmacy(row: Row) -> bool:
    return row["code_system"] in systems.PHARMACY_CODE_SYSTEMS


def periods(rows: Iterable[Row]) -> list[Period]:
    """The treatment periods of the pharmacy lines among ``rows`` (one patient's), per drug."""
    by_drug: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if is_pharmacy(r):
            by_drug.setdefault((r["code_system"], r["code"]), []).append(r)
    out: list[Period] = []
    for (system, code), lines in sorted(by_drug.items()):
        current: Period | None = None
        for r in sorted(lines, key=lambda x: (x["care_date"], x["invoice_id"], x["line_no"])):
            day = date.fromisoformat(r["care_date"])
            supply = timedelta(days=SUPPLY_DAYS * int(r["quantity"]))
            if current is None or day > current.end + timedelta(days=GAP_DAYS):
                current = Period(system, code, r["label"], day, day + supply)
                out.append(current)
            else:
                current.end = max(current.end, day + supply)
            current.invoices.add(r["invoice_id"])
            current.asserted = max(current.asserted, r["payment_date"])
    return out


def statement_key(patient_id: str, period: Period) -> str:
    """The natural key of a derived statement: patient, drug and start of the period."""
    return f"{patient_id}|{period.system}|{period.code}|{period.start.isoformat()}"


def medication_statement(patient_id: str, period: Period, today: date) -> Json:
    """The MedicationStatement of one period."""
    key = statement_key(patient_id, period)
    return {
        "resourceType": "MedicationStatement",
        "id": derived_id("ms", key),
        "identifier": [{"system": systems.DERIVED_MEDICATION, "value": key}],
        "status": "active" if period.end >= today else "completed",
        "category": {
            "coding": [{"system": systems.MEDICATION_STATEMENT_CATEGORY, "code": _CATEGORY[period.system]}]
        },
        "medicationCodeableConcept": {
            "coding": [{"system": systems.CIP_UCD, "code": period.code, "display": period.label}],
            "text": period.label,
        },
        "subject": ref("Patient", patient_id),
        "effectivePeriod": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "dateAsserted": period.asserted,
        "informationSource": ref("Organization", CNAM_ORGANIZATION),
        "derivedFrom": [ref("ExplanationOfBenefit", eob_id(i)) for i in sorted(period.invoices)],
    }


def derived_statements(patient_id: str, rows: Iterable[Row], today: date) -> list[Json]:
    """Every statement the pharmacy lines among one patient's ``rows`` give."""
    return [medication_statement(patient_id, p, today) for p in periods(rows)]
