"""Checking extract lines: schema, NIR key, dates, amounts, invoices that agree with themselves."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest

from fhir_server.config import Settings
from fhir_server.dmp.extract import Batches, ExtractError, LineChecker, read_rows
from tests.dmp.extracts import HEADER, drug, extract, line, new_nir

TERMINOLOGY = Settings().terminology_dir


def _batches(text: str, size: int = 1000) -> tuple[list[list[str]], Batches]:
    batches = Batches(LineChecker(TERMINOLOGY, date.today()), size)
    out = [[inv.invoice_id for inv in batch] for batch in batches.invoices(io.StringIO(text))]
    return out, batches


def test_the_schema_has_exactly_the_columns_of_the_extract() -> None:
    import orjson

    schema = orjson.loads((TERMINOLOGY / "reimbursement-extract-line.schema.json").read_bytes())
    assert tuple(schema["required"]) == tuple(HEADER.split(";"))
    assert set(schema["properties"]) == set(HEADER.split(";"))


def test_good_lines_pass_and_bad_ones_are_reported_by_line_number() -> None:
    nir = new_nir()
    bad_key = nir[:13] + f"{(int(nir[13:]) + 1) % 100:02d}"
    text = extract(
        line(nir, "F1"),
        line(bad_key, "F2"),
        line(nir, "F3", amounts=("30.00", "20.00", "11.00")),
        line(nir, "F4", days_ago=-5),
        line(nir, "F5", system="CCAM", code="zbqk002"),
        line(nir, "F6", performer=("12345", "PS")),
        "too;few;fields",
        drug(nir, "F7", 10),
    )
    invoices, batches = _batches(text)
    assert invoices == [["F1", "F7"]]
    reasons = {r.line: r.reason for r in batches.rejected}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert "key" in reasons[3]
    assert "is not base_amount" in reasons[4]
    assert "future" in reasons[5]
    assert reasons[6].startswith("code:")
    assert reasons[7].startswith("performer_id:")
    assert "fields" in reasons[8]


def test_a_line_that_contradicts_its_invoice_is_rejected() -> None:
    nir, other = new_nir(), new_nir(sex="2")
    text = extract(
        line(nir, "G1", 1), line(other, "G1", 2), line(nir, "G1", 3, performer=("10000000009", "PS"))
    )
    invoices, batches = _batches(text)
    assert invoices == [["G1"]]
    assert [r.line for r in batches.rejected] == [3, 4]
    assert "nir" in batches.rejected[0].reason and "performer_id" in batches.rejected[1].reason


def test_batches_never_split_an_invoice() -> None:
    nir = new_nir()
    text = extract(line(nir, "H1", 1), line(nir, "H1", 2), line(nir, "H2", 1), line(nir, "H3", 1))
    invoices, _ = _batches(text, size=2)
    assert invoices == [["H1"], ["H2", "H3"]]


def test_a_wrong_header_stops_the_import() -> None:
    with pytest.raises(ExtractError, match="header"):
        list(read_rows(io.StringIO("nir,invoice_id\n1,2\n")))


def test_a_utf8_bom_before_the_header_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("\ufeff" + extract(line(new_nir(), "B1")), encoding="utf-8")
    with path.open(encoding="utf-8", newline="") as f:
        assert [n for n, row, _ in read_rows(f) if row] == [2]
