"""The flat reimbursement extract (DOMAIN.md, docs/reimbursement-extract.md): reading and checking lines.

A line is checked against ``terminology/reimbursement-extract-line.schema.json`` with ``jsonschema``,
then for what a schema cannot say: the NIR key, real calendar dates (payment not before care, care not
in the future), the amounts adding up (``reimbursed_amount + patient_share = base_amount``, to the
cent), and within an invoice the same NIR, performer and payment date on every line. A bad line is
reported by its line number in the file (the header is line 1) with the reason, and skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from fhir_server.dmp.nir import InvalidNir, parse_nir

SCHEMA_FILE = "reimbursement-extract-line.schema.json"
COLUMNS = (
    "nir", "invoice_id", "line_no", "care_date", "payment_date", "prescriber_rpps", "performer_id",
    "performer_kind", "code_system", "code", "label", "quantity", "base_amount", "reimbursed_amount",
    "patient_share",
)  # fmt: skip
# Columns every line of one invoice must agree on.
INVOICE_COLUMNS = ("nir", "performer_id", "performer_kind", "payment_date")
Row = dict[str, str]


class ExtractError(ValueError):
    """The file as a whole cannot be read as an extract (wrong header, not UTF-8...)."""


@dataclass(frozen=True)
class Rejected:
    """A line that was not imported: where it is and why."""

    line: int
    reason: str


@dataclass
class Line:
    """A checked line: its number in the file and its columns."""

    number: int
    row: Row

    @property
    def invoice(self) -> str:
        return self.row["invoice_id"]


@dataclass
class Invoice:
    """The checked lines of one invoice, in file order."""

    invoice_id: str
    lines: list[Line] = field(default_factory=list)


@cache
def _validator(schema_path: Path) -> jsonschema.protocols.Validator:
    schema = orjson.loads(schema_path.read_bytes())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def _schema_reason(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "pattern" and where:
        return f"{where}: '{error.instance}' does not have the expected form"
    if error.validator == "enum" and where:
        return f"{where}: '{error.instance}' is not one of {', '.join(map(str, error.validator_value))}"
    return f"{where}: {error.message}" if where else error.message


def _date(row: Row, column: str) -> date | str:
    try:
        return date.fromisoformat(row[column])
    except ValueError:
        return f"{column}: '{row[column]}' is not a calendar date"


class LineChecker:
    """Checks lines one by one (``today`` bounds the care dates)."""

    def __init__(self, terminology_dir: Path, today: date) -> None:
        self.validator = _validator(terminology_dir / SCHEMA_FILE)
        self.today = today

    def problem(self, row: Row) -> str | None:
        """Why ``row`` cannot be imported, or None when it can."""
        if not self.validator.is_valid(row):
            errors = sorted(self.validator.iter_errors(row), key=lambda e: list(e.absolute_path))
            return "; ".join(_schema_reason(e) for e in errors[:3])
        try:
            parse_nir(row["nir"])
        except InvalidNir as exc:
            return f"nir: {exc}"
        care, paid = _date(row, "care_date"), _date(row, "payment_date")
        for d in (care, paid):
            if isinstance(d, str):
                return d
        assert isinstance(care, date) and isinstance(paid, date)
        if care > self.today:
            return f"care_date: {care} is in the future"
        if paid < care:
            return f"payment_date: {paid} is before the care date {care}"
        base, paid_back, share = (
            Decimal(row[c]) for c in ("base_amount", "reimbursed_amount", "patient_share")
        )
        if paid_back + share != base:
            return (
                f"amounts: reimbursed_amount {row['reimbursed_amount']} + patient_share "
                f"{row['patient_share']} is not base_amount {row['base_amount']}"
            )
        return None


def read_rows(stream: Iterable[str]) -> Iterator[tuple[int, Row | None, str | None]]:
    """``(line number, columns, None)`` per data line, or ``(n, None, reason)`` for a line with the
    wrong number of fields; :class:`ExtractError` when the header is not exactly the extract's."""
    reader = csv.reader(stream, delimiter=";", quotechar='"', strict=True)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise ExtractError("the extract is empty (it needs a header line)") from exc
    except csv.Error as exc:
        raise ExtractError(f"line 1: {exc}") from exc
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    if tuple(header) != COLUMNS:
        raise ExtractError(f"the header must be exactly: {';'.join(COLUMNS)} (found: {';'.join(header)})")
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, None, f"not a CSV line: {exc}"
            continue
        if not fields:
            continue
        if len(fields) != len(COLUMNS):
            yield reader.line_num, None, f"{len(fields)} fields, the extract has {len(COLUMNS)}"
            continue
        yield reader.line_num, dict(zip(COLUMNS, fields, strict=True)), None


@dataclass
class Batches:
    """Groups checked lines into whole invoices and batches of invoices, and collects rejections.

    Lines of one invoice are usually contiguous; an invoice met again later in the file is simply
    part of a later batch (its staged lines are merged when its resources are written)."""

    checker: LineChecker
    batch_lines: int
    rejected: list[Rejected] = field(default_factory=list)
    lines: int = 0

    def invoices(self, stream: Iterable[str]) -> Iterator[list[Invoice]]:
        """Batches of whole invoices of about ``batch_lines`` lines."""
        batch: list[Invoice] = []
        size = 0
        current: Invoice | None = None
        for number, row, problem in read_rows(stream):
            self.lines += 1
            if row is not None:
                problem = self.checker.problem(row)
            if (
                problem is None
                and row is not None
                and current is not None
                and current.invoice_id == row["invoice_id"]
            ):
                problem = _disagreement(current.lines[0].row, row)
            if problem is not None or row is None:
                self.rejected.append(Rejected(number, problem or "unreadable"))
                continue
            if current is None or current.invoice_id != row["invoice_id"]:
                if current is not None and size >= self.batch_lines:
                    yield batch
                    batch, size = [], 0
                current = Invoice(row["invoice_id"])
                batch.append(current)
            current.lines.append(Line(number, row))
            size += 1
        if batch:
            yield batch


def _disagreement(first: Row, row: Row) -> str | None:
    for column in INVOICE_COLUMNS:
        if row[column] != first[column]:
            return (
                f"{column}: '{row[column]}' differs from '{first[column]}' on the first line of "
                f"invoice {row['invoice_id']}"
            )
    return None


def report_json(source: str, counts: dict[str, Any], rejected: list[Rejected]) -> bytes:
    """The import report written next to the input: counts and every rejected line."""
    body = {
        "source": source,
        **counts,
        "rejected": [{"line": r.line, "reason": r.reason} for r in rejected],
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"
