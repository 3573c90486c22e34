"""Pharmacy lines become one MedicationStatement per drug and treatment period."""

from __future__ import annotations

from datetime import date, timedelta

from fhir_server.dmp.extract import COLUMNS
from fhir_server.dmp.medications import derived_statements
from tests.dmp.extracts import drug, line, new_nir


def _rows(*lines: str) -> list[dict[str, str]]:
    return [dict(zip(COLUMNS, x.split(";"), strict=True)) for x in lines]


def test_monthly_boxes_make_one_statement_and_a_long_gap_starts_another() -> None:
    nir = new_nir()
    rows = _rows(
        drug(nir, "M1", 200), drug(nir, "M2", 170), drug(nir, "M3", 140),  # one period
        drug(nir, "M4", 20),  # after 3 months without a box: a new period, still being taken
        line(nir, "M5", days_ago=30),  # not a drug
    )  # fmt: skip
    statements = derived_statements("p1", rows, date.today())
    assert len(statements) == 2
    old, new = sorted(statements, key=lambda s: s["effectivePeriod"]["start"])
    assert old["status"] == "completed" and new["status"] == "active"
    assert old["effectivePeriod"] == {
        "start": (date.today() - timedelta(days=200)).isoformat(),
        "end": (date.today() - timedelta(days=140 - 30)).isoformat(),
    }
    assert len(old["derivedFrom"]) == 3
    assert new["derivedFrom"][0]["reference"].startswith("ExplanationOfBenefit/")


def test_different_drugs_are_different_statements() -> None:
    nir = new_nir()
    rows = _rows(drug(nir, "N1", 10), drug(nir, "N1", 10, n=2, cip="3400931267041"))
    codes = {
        s["medicationCodeableConcept"]["coding"][0]["code"]
        for s in derived_statements("p", rows, date.today())
    }
    assert codes == {"3400930950289", "3400931267041"}
