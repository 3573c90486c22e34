"""Pure parts of feeding a DMP: the history window and the INS a Patient carries."""

from __future__ import annotations

from datetime import date

from fhir_server.dmp import systems
from fhir_server.dmp.feed import ins_values, months_before


def test_the_history_window_counts_calendar_months() -> None:
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2026, 12, 7), 12) == date(2025, 12, 7)
    assert months_before(date(2028, 2, 29), 24) == date(2026, 2, 28)


def test_a_dmp_is_opened_by_an_ins_the_previous_version_did_not_carry() -> None:
    nir = {"system": systems.INS_NIR, "value": "180047510812345"}
    other = {"system": "urn:oid:1.2.3", "value": "x"}
    before = {"resourceType": "Patient", "identifier": [other]}
    after = {"resourceType": "Patient", "identifier": [other, nir]}
    assert ins_values(after) - ins_values(before) == {"180047510812345"}
    assert ins_values(after) - ins_values(after) == set()
