"""Where demo data goes: files in a directory, or the database through the server's own write path.

``write_demo`` writes ``bundles.ndjson`` (one transaction Bundle a line), the reimbursement extract and
``manifest.json`` (what was generated, with counts), all byte-for-byte reproducible. ``load_demo`` runs
the same Bundles through the server's :class:`BundleProcessor` with full access, one database
transaction each, exactly as a client POSTing them to ``[base]`` would, and writes the extract too:
reimbursements enter the server through ``fhir-server import-reimbursements``, never directly.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_server.dmp.demo import Chunk, DemoOptions, generate
from fhir_server.dmp.extract import COLUMNS as EXTRACT_COLUMNS
from fhir_server.fhir.bundle import BundleProcessor
from fhir_server.fhir.errors import FhirError
from fhir_server.progress import Progress

BUNDLES_FILE = "bundles.ndjson"
EXTRACT_FILE = "reimbursements.csv"
MANIFEST_FILE = "manifest.json"


class DemoLoadError(Exception):
    """The server refused a Bundle; the Bundles before it are stored."""


@dataclass
class DemoSummary:
    """What was generated: resources per type, bundles, extract lines and invoices."""

    options: DemoOptions
    resources: Counter[str] = field(default_factory=Counter)
    bundles: int = 0
    lines: int = 0
    invoices: set[str] = field(default_factory=set)

    def count(self, chunk: Chunk) -> None:
        self.bundles += 1
        self.resources.update(e["resource"]["resourceType"] for e in chunk.bundle["entry"])
        self.lines += len(chunk.rows)
        self.invoices.update(row[1] for row in chunk.rows)

    def as_json(self, files: dict[str, str]) -> dict[str, Any]:
        return {
            "seed": self.options.seed,
            "asOf": self.options.as_of.isoformat(),
            "patients": self.options.patients,
            "bundles": self.bundles,
            "resources": dict(sorted(self.resources.items())),
            "extractLines": self.lines,
            "invoices": len(self.invoices),
            "files": files,
        }

    def describe(self) -> str:
        """A few lines for the terminal."""
        types = ", ".join(f"{n:,} {t}" for t, n in sorted(self.resources.items()))
        return (
            f"{self.options.patients:,} patients (seed {self.options.seed}, as of {self.options.as_of}): "
            f"{sum(self.resources.values()):,} resources in {self.bundles:,} transaction bundles\n"
            f"  {types}\n"
            f"  reimbursement extract: {self.lines:,} lines, {len(self.invoices):,} invoices"
        )


@contextmanager
def extract_writer(path: Path) -> Iterator[Any]:
    """A CSV writer of the flat extract (UTF-8, ``;``, header line) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=";", lineterminator="\n")
        writer.writerow(EXTRACT_COLUMNS)
        yield writer


def write_demo(options: DemoOptions, out: Path, extract: Path | None = None) -> DemoSummary:
    """Write the Bundles, the extract (``extract`` or ``out/reimbursements.csv``) and the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    extract = extract or out / EXTRACT_FILE
    summary = DemoSummary(options)
    with (
        (out / BUNDLES_FILE).open("wb") as bundles,
        extract_writer(extract) as rows,
        Progress(options.patients, "demo data", "patients") as progress,
    ):
        for chunk in generate(options):
            bundles.write(orjson.dumps(chunk.bundle) + b"\n")
            rows.writerows(chunk.rows)
            summary.count(chunk)
            progress.advance(chunk.patients)
    files = {"bundles": BUNDLES_FILE, "extract": extract.name if extract.parent == out else str(extract)}
    manifest = orjson.dumps(summary.as_json(files), option=orjson.OPT_INDENT_2) + b"\n"
    (out / MANIFEST_FILE).write_bytes(manifest)
    return summary


async def load_demo(options: DemoOptions, processor: BundleProcessor, extract: Path) -> DemoSummary:
    """Store every Bundle through ``processor`` (one transaction each) and write the extract."""
    summary = DemoSummary(options)
    with extract_writer(extract) as rows, Progress(options.patients, "demo data", "patients") as progress:
        for chunk in generate(options):
            try:
                await processor.process(chunk.bundle, "minimal")
            except FhirError as exc:
                raise DemoLoadError(
                    f"the server refused bundle {summary.bundles + 1} (HTTP {exc.status}): {exc}; "
                    f"the {summary.bundles} bundles before it are stored, and loading again is safe"
                ) from exc
            rows.writerows(chunk.rows)
            summary.count(chunk)
            progress.advance(chunk.patients)
    return summary
