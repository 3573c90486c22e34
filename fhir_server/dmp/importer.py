"""Importing reimbursements: flat extracts (CSV) and FHIR Bundles (docs/reimbursement-extract.md).

An extract is read in batches of whole invoices; each batch is one transaction that stages its lines
and writes the resources of those whose DMP exists. An acknowledged batch is on disk; a crash loses at
most the batch in flight, and running the import again completes it without duplicates (staged lines
and resources are keyed by NIR, invoice and line).

A FHIR Bundle file goes through the server's Bundle path: ``batch`` and ``transaction`` as they are; a
``collection`` becomes transactions of conditional updates on each resource's first identifier (its id
when it has none), so importing it again updates rather than duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fhir_server.dmp.extract import Batches, Invoice, LineChecker, Rejected, report_json
from fhir_server.dmp.feed import Feeder
from fhir_server.dmp.staging import ensure_staging_indexes, rows_of, stage
from fhir_server.fhir.bundle import BundleProcessor
from fhir_server.fhir.dates import now_ms
from fhir_server.fhir.errors import BadRequest
from fhir_server.storage.repository import Repository, Session

Json = dict[str, Any]
BATCH_LINES = 1000


@dataclass
class ImportReport:
    """What an import did: lines read, invoices, lines waiting for a DMP, resources written, rejections."""

    source: str
    lines: int = 0
    invoices: int = 0
    applied: int = 0
    waiting: int = 0
    written: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejected] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "invoices": self.invoices,
            "imported": self.lines - len(self.rejected),
            "appliedToDmp": self.applied,
            "waitingForDmp": self.waiting,
            "resourcesWritten": sum(self.written.values()),
            "resourcesByType": dict(sorted(self.written.items())),
            "rejectedLines": len(self.rejected),
        }

    def to_json(self) -> bytes:
        return report_json(self.source, self.counts(), self.rejected)

    def describe(self) -> str:
        """The summary printed at the end of an import."""
        c = self.counts()
        by_type = ", ".join(f"{n} {t}" for t, n in c["resourcesByType"].items()) or "none"
        lines = [
            f"{self.source}: {c['lines']} lines, {c['invoices']} invoices, {c['imported']} imported "
            f"({c['appliedToDmp']} into open DMPs, {c['waitingForDmp']} waiting for their DMP), "
            f"{c['rejectedLines']} rejected",
            f"resources written: {c['resourcesWritten']} ({by_type})",
        ]
        lines += [f"  line {r.line}: {r.reason}" for r in self.rejected[:20]]
        if len(self.rejected) > 20:
            lines.append(f"  ... and {len(self.rejected) - 20} more (see the report file)")
        return "\n".join(lines)


class ExtractImporter:
    """Imports flat extracts into the database of ``repo`` (with the server's full access)."""

    def __init__(
        self, repo: Repository, terminology_dir: Path, today: date, batch_lines: int = BATCH_LINES
    ) -> None:
        self.repo = repo
        self.checker = LineChecker(terminology_dir, today)
        self.feeder = Feeder(repo, today)
        self.batch_lines = batch_lines

    async def run(
        self, stream: Iterable[str], source: str, advance: Callable[[int], None] | None = None
    ) -> ImportReport:
        """Import the extract read from ``stream`` (text lines); ``advance(n)`` after each batch."""
        await ensure_staging_indexes(self.repo.mongo)
        report = ImportReport(source)
        batches = Batches(self.checker, self.batch_lines)
        invoices = batches.invoices(stream)
        before = self.feeder.written.copy()
        seen = 0
        # Lines are read and checked in a thread, one batch ahead: that work overlaps the database's.
        ahead = asyncio.ensure_future(asyncio.to_thread(next, invoices, None))
        try:
            while (batch := await ahead) is not None:
                read = batches.lines
                ahead = asyncio.ensure_future(asyncio.to_thread(next, invoices, None))
                await self._batch(batch, report)
                if advance is not None:
                    advance(read - seen)
                seen = read
        finally:
            if not ahead.done():
                with contextlib.suppress(Exception):
                    await ahead
        if advance is not None and batches.lines > seen:
            advance(batches.lines - seen)
        report.lines = batches.lines
        report.rejected = batches.rejected
        report.written = self.feeder.written - before
        return report

    async def _batch(self, invoices: list[Invoice], report: ImportReport) -> None:
        lines = [line for inv in invoices for line in inv.lines]
        nirs = {line.row["nir"] for line in lines}
        now = now_ms()
        mongo = self.repo.mongo
        outcome: dict[str, int] = {}

        async def run(s: Session) -> None:
            self.feeder.begin()
            patients = await self.feeder.patients_for(nirs, s)
            await stage(mongo, lines, patients, now, s)
            touched = {inv.invoice_id for inv in invoices if inv.lines[0].row["nir"] in patients}
            if patients:
                staged = await rows_of(mongo, patients, s)
                await self.feeder.apply(staged, patients, s, touched)
            outcome["applied"] = sum(1 for line in lines if line.row["nir"] in patients)

        await self.repo.in_transaction(run)
        self.feeder.commit()
        report.invoices += len(invoices)
        report.applied += outcome["applied"]
        report.waiting += len(lines) - outcome["applied"]


def as_transaction(bundle: Json) -> Json:
    """A ``collection`` Bundle as a transaction of idempotent writes: a conditional update on the
    resource's first identifier, else an update at its id, else a create."""
    entries = []
    for i, entry in enumerate(bundle.get("entry") or []):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            raise BadRequest(f"Bundle.entry[{i}] has no resource", expression=f"Bundle.entry[{i}].resource")
        rtype = res["resourceType"]
        ident = next(
            (
                x
                for x in res.get("identifier") or []
                if isinstance(x, dict) and x.get("system") and x.get("value")
            ),
            None,
        )
        if ident is not None:
            criteria = urlencode({"identifier": f"{ident['system']}|{ident['value']}"})
            request = {"method": "PUT", "url": f"{rtype}?{criteria}"}
        elif res.get("id"):
            request = {"method": "PUT", "url": f"{rtype}/{res['id']}"}
        else:
            request = {"method": "POST", "url": rtype}
        out: Json = {"resource": res, "request": request}
        if entry.get("fullUrl"):
            out["fullUrl"] = entry["fullUrl"]
        entries.append(out)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def import_bundle(processor: BundleProcessor, bundle: Any) -> Counter[str]:
    """Run a batch, transaction or collection Bundle; the count of entries per response status."""
    if (
        isinstance(bundle, dict)
        and bundle.get("resourceType") == "Bundle"
        and bundle.get("type") == "collection"
    ):
        bundle = as_transaction(bundle)
    response = await processor.process(bundle, preference="minimal")
    return Counter(
        str(e.get("response", {}).get("status", "")).split(" ")[0] for e in response.get("entry") or []
    )
