"""Reimbursement import benchmark: an N-line flat extract end to end, against raw ``insert_many``.

    python bench/import.py --lines 20000

1. ``fhir-server demo-data --out`` writes a deterministic extract of about ``--lines`` lines (in a
   child process, so its memory is not counted here);
2. a throw-away embedded database is started and every NIR of the extract but one gets a DMP (a
   Patient with that INS, through the server's bulk create: validated and indexed);
3. the extract is imported through the server's import path (line checks, staging, Claim/EOB/
   Coverage/MedicationStatement mapping, validation, search indexes, a transaction per batch):
   lines/s and peak RSS of this process (the database's RSS too);
4. the documents the import left (current versions, history, staging) are inserted again with raw
   ``insert_many`` into fresh collections of the same database, once without secondary indexes and
   once with the same indexes: the ratio import/raw is the figure that matters (aim ≥ 0.5);
5. the held-out NIR's DMP is opened (a Patient create): the time it takes with its staged history.

Prints human-readable figures, then one JSON line with everything (the last line of output).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import json
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import psutil
from pymongo import IndexModel

from fhir_server.auth.labels import POLICY_INDEXES
from fhir_server.config import Settings
from fhir_server.dmp import systems
from fhir_server.dmp.importer import ExtractImporter
from fhir_server.dmp.staging import STAGING, ensure_staging_indexes
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.fhir.rest import ResourceService
from fhir_server.search.engine import SearchEngine
from fhir_server.search.index import index_specs
from fhir_server.storage.client import Mongo
from fhir_server.storage.indexes import HISTORY
from fhir_server.storage.launcher import Database, start_database, stop_database
from fhir_server.storage.repository import Repository

# About this many extract lines per demo patient (measured on the generator; the run reports the truth).
_LINES_PER_PATIENT = 18
_WRITTEN = (
    "Claim",
    "ExplanationOfBenefit",
    "Coverage",
    "MedicationStatement",
    "Practitioner",
    "Organization",
)
_RAW_BATCH = 1000


def _generate(lines: int, out: Path, as_of: date) -> Path:
    patients = max(2, round(lines / _LINES_PER_PATIENT))
    cmd = [str(Path(sys.executable).parent / "fhir-server"), "demo-data", "--patients", str(patients)]
    cmd += ["--seed", "7", "--as-of", as_of.isoformat(), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out / "reimbursements.csv"


def _nirs(path: Path) -> Counter[str]:
    with path.open(encoding="utf-8") as f:
        next(f)
        return Counter(line.split(";", 1)[0] for line in f)


def _patient(nir: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": systems.INS_NIR, "value": nir}],
        "gender": "male" if nir[0] in "137" else "female",
    }


def _say(what: str) -> None:
    """A figure as soon as it is measured (the database can take a while to stop at the end)."""
    print(what, file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _raw_insert(mongo: Mongo, indexed: bool) -> tuple[int, float]:
    """Insert again every document the import left, into fresh collections (with the same indexes as
    the originals when ``indexed``); (documents, seconds)."""
    total, elapsed = 0, 0.0
    for name in [*_WRITTEN, HISTORY, STAGING]:
        target = mongo.db[f"raw_{name}"]
        await target.drop()
        if indexed:
            info = await mongo.db[name].index_information()
            models = [IndexModel(spec["key"], name=n) for n, spec in info.items() if n != "_id_"]
            if models:
                await target.create_indexes(models)
        query = {"t": {"$in": list(_WRITTEN)}} if name == HISTORY else {}
        # Read a batch, then time its insert: only the inserts are counted, and memory stays bounded.
        cursor = mongo.db[name].find(query, batch_size=_RAW_BATCH)
        while docs := await cursor.to_list(_RAW_BATCH):
            started = time.perf_counter()
            await target.insert_many(docs, ordered=False)
            elapsed += time.perf_counter() - started
            total += len(docs)
        await target.drop()
    return total, elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    today = date.today()
    work = Path(tempfile.mkdtemp(prefix="fhir-bench-import-"))
    extract = _generate(args.lines, work / "demo", today)
    nirs = _nirs(extract)
    held_out = max(nirs, key=lambda n: (nirs[n], n))
    settings = dataclasses.replace(Settings(), mongo_uri="", data_dir=work / "db", mongo_db="bench")
    db = await start_database(settings)
    out: dict[str, Any] = {"lines": sum(nirs.values()), "nirs": len(nirs), "machine": platform.platform()}
    try:
        sep = "&" if "?" in db.uri else "?"
        mongo = Mongo(f"{db.uri}{sep}connectTimeoutMS=120000", settings.mongo_db)
        indexes = index_specs(SERVED_TYPES)
        for rtype, extra in POLICY_INDEXES.items():
            indexes[rtype] = [*indexes.get(rtype, []), *extra]
        await mongo.open(indexes)
        await ensure_staging_indexes(mongo)
        repo = Repository(mongo)
        engine = SearchEngine(repo, settings.fhir_base, 60, 1000)
        service = ResourceService(repo, engine, history_months=settings.reimbursement_history_months)
        opened = [n for n in sorted(nirs) if n != held_out]
        started = time.perf_counter()
        for i in range(0, len(opened), 500):
            await service.create_many([_patient(n) for n in opened[i : i + 500]])
        out["dmps_opened_s"] = round(time.perf_counter() - started, 1)
        _say(f"{len(opened):,} DMPs opened in {out['dmps_opened_s']} s; importing {out['lines']:,} lines")
        rss_before = _peak_rss_mb()
        importer = ExtractImporter(repo, settings.terminology_dir, today, batch_lines=args.batch_lines)
        profile = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        with extract.open(encoding="utf-8", newline="") as f:
            if profile:
                profile.enable()
            report = await importer.run(f, str(extract))
            if profile:
                profile.disable()
        elapsed = time.perf_counter() - started
        out.update(
            import_s=round(elapsed, 1),
            lines_per_s=round(report.lines / elapsed),
            resources_written=dict(report.written),
            rejected=len(report.rejected),
            peak_rss_mb_before_import=round(rss_before),
            peak_rss_mb=round(_peak_rss_mb()),
            db_rss_mb=round(sum(p.memory_info().rss for p in _db_processes(db)) / 2**20),
        )
        _say(f"import: {out['import_s']} s, {out['lines_per_s']:,} lines/s, {out['resources_written']}")
        if profile:
            pstats.Stats(profile, stream=sys.stderr).sort_stats(args.profile_sort).print_stats(45)
        for indexed in (False, True):
            docs, raw_s = await _raw_insert(mongo, indexed)
            key = "raw_indexed" if indexed else "raw_no_index"
            out[key] = {"documents": docs, "s": round(raw_s, 1), "docs_per_s": round(docs / raw_s)}
            out[f"ratio_vs_{key}"] = round(raw_s / elapsed, 3)
            _say(f"{key}: {out[key]}, ratio {out[f'ratio_vs_{key}']}")
        started = time.perf_counter()
        await service.create("Patient", _patient(held_out))
        out["open_dmp_ms"] = round((time.perf_counter() - started) * 1000)
        out["open_dmp_staged_lines"] = nirs[held_out]
        _say(f"DMP opened with {nirs[held_out]} staged lines in {out['open_dmp_ms']} ms")
        await mongo.close()
    finally:
        await stop_database(db)
        shutil.rmtree(work, ignore_errors=True)
    return out


def _db_processes(db: Database) -> list[psutil.Process]:
    if db.process is None:
        return []
    try:
        proc = psutil.Process(db.process.pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lines", type=int, default=1_000_000, help="extract size, lines (default 1,000,000)"
    )
    parser.add_argument(
        "--batch-lines", type=int, default=1000, help="lines per import transaction (default 1000)"
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the import to stderr")
    parser.add_argument(
        "--profile-sort", default="cumulative", help="cProfile order: cumulative (default), tottime, ..."
    )
    args = parser.parse_args()
    out = asyncio.run(run(args))
    print(
        f"{out['lines']:,} lines ({out['nirs']:,} NIRs): import {out['import_s']} s = {out['lines_per_s']:,} lines/s, "
        f"peak RSS {out['peak_rss_mb']} MB (database {out['db_rss_mb']} MB)"
    )
    for key in ("raw_no_index", "raw_indexed"):
        raw = out[key]
        print(
            f"raw insert_many ({key[4:].replace('_', ' ')}): {raw['documents']:,} documents in {raw['s']} s "
            f"({raw['docs_per_s']:,}/s); import/raw ratio {out[f'ratio_vs_{key}']}"
        )
    print(f"opening a DMP with {out['open_dmp_staged_lines']} staged lines: {out['open_dmp_ms']} ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
