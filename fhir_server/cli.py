"""The ``fhir-server`` command: ``serve``, ``capability``, ``counts``, ``demo-data``, ``purge-closed``,
``import-reimbursements``, ``export-worker``, and ``users``, ``clients``, ``token``
(:mod:`fhir_server.auth.cli`).

Commands that need the database accept ``--data-dir`` (or ``FHIR_DATA_DIR``) and honour
``FHIR_MONGO_URI``; with the embedded database they reach the one a running server started, or start it
for their own duration (see :mod:`fhir_server.storage.launcher`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fhir_server.config import Settings

if TYPE_CHECKING:
    from fhir_server.fhir.bundle import BundleProcessor


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    changes: dict[str, object] = {}
    if getattr(args, "host", None):
        changes["host"] = args.host
    if getattr(args, "port", None):
        changes["port"] = args.port
    if getattr(args, "data_dir", None):
        changes["data_dir"] = Path(args.data_dir)
    if getattr(args, "insecure_no_auth", False):
        changes["auth"] = False
    return dataclasses.replace(settings, **changes) if changes else settings


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_server.app import create_app
    from fhir_server.auth.matrix import MatrixError

    settings = _settings(args)
    _logging(settings.log_level)
    try:
        app = create_app(settings)
    except MatrixError as exc:
        print(f"fhir-server: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("fhir_server").info("FHIR base URL: %s", settings.fhir_base)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def _capability(args: argparse.Namespace) -> int:
    from fhir_server.fhir.capability import capability_statement

    sys.stdout.buffer.write(orjson.dumps(capability_statement(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0


async def _count_all(settings: Settings) -> dict[str, int]:
    from fhir_server.fhir.registry import SERVED_TYPES
    from fhir_server.storage.client import Mongo
    from fhir_server.storage.launcher import database

    async with database(settings) as db:
        mongo = Mongo(db.uri, settings.mongo_db)
        try:
            return {t: await mongo.db[t].count_documents({"del": False}) for t in SERVED_TYPES}
        finally:
            await mongo.close()


def _counts(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging("WARNING")
    counts = asyncio.run(_count_all(settings))
    for rtype, n in counts.items():
        print(f"{rtype:24} {n}")
    return 0


@asynccontextmanager
async def _write_path(settings: Settings) -> AsyncIterator[BundleProcessor]:
    """The server's own Bundle processor, with full access, on the database of ``settings``."""
    from fhir_server.dmp.staging import ensure_staging_indexes
    from fhir_server.fhir.bundle import BundleProcessor
    from fhir_server.fhir.registry import SERVED_TYPES
    from fhir_server.fhir.rest import ResourceService
    from fhir_server.fhir.searchset import SearchOptions
    from fhir_server.search.engine import SearchEngine
    from fhir_server.search.index import index_specs
    from fhir_server.storage.client import Mongo
    from fhir_server.storage.launcher import database
    from fhir_server.storage.repository import Repository

    async with database(settings) as db:
        # A long load keeps the database busy: the driver's monitor would give up on it after its
        # default 20 s connect timeout and cancel the transaction in flight; this client waits longer.
        uri = (
            db.uri
            if "connectTimeoutMS" in db.uri
            else f"{db.uri}{'&' if '?' in db.uri else '?'}connectTimeoutMS=120000"
        )
        mongo = Mongo(uri, settings.mongo_db)
        try:
            await mongo.open(index_specs(SERVED_TYPES))
            await ensure_staging_indexes(mongo)
            repo = Repository(mongo)
            engine = SearchEngine(
                repo, settings.fhir_base, settings.page_link_ttl, settings.max_chain_matches
            )
            options = SearchOptions(settings.default_page_size, settings.max_page_size)
            service = ResourceService(
                repo,
                engine,
                retention_years=settings.dmp_retention_years,
                history_months=settings.reimbursement_history_months,
            )
            yield BundleProcessor(service, settings.fhir_base, options, settings.max_bundle_entries)
        finally:
            await mongo.close()


def _demo_data(args: argparse.Namespace) -> int:
    from fhir_server.dmp.demo import DemoOptions
    from fhir_server.dmp.demo_output import DemoLoadError, load_demo, write_demo

    if args.patients < 1 or args.seed < 0 or args.bundle_entries < 1:
        print(
            "fhir-server: --patients and --bundle-entries must be positive, --seed not negative",
            file=sys.stderr,
        )
        return 2
    settings = _settings(args)
    _logging("WARNING")
    entries = min(args.bundle_entries, settings.max_bundle_entries)
    options = DemoOptions(args.patients, args.seed, args.as_of, entries)
    extract = Path(args.extract) if args.extract else None
    if args.out:
        summary = write_demo(options, Path(args.out), extract)
        print(summary.describe())
        print(f"written to {args.out}")
        return 0
    extract = extract or Path(f"demo-reimbursements-{args.seed}.csv")

    async def load() -> str:
        async with _write_path(settings) as processor:
            return (await load_demo(options, processor, extract)).describe()

    try:
        print(asyncio.run(load()))
    except DemoLoadError as exc:
        print(f"fhir-server: {exc}", file=sys.stderr)
        return 1
    print(
        f"reimbursement extract written to {extract}; import it with: fhir-server import-reimbursements {extract}"
    )
    return 0


def _purge_closed(args: argparse.Namespace) -> int:
    from fhir_server.dmp.purge import purge_closed
    from fhir_server.storage.client import Mongo
    from fhir_server.storage.launcher import database
    from fhir_server.storage.repository import Repository

    settings = _settings(args)
    _logging("WARNING")

    async def run() -> str:
        async with database(settings) as db:
            mongo = Mongo(db.uri, settings.mongo_db)
            try:
                report = await purge_closed(
                    Repository(mongo), settings.dmp_retention_years, args.as_of, args.dry_run
                )
            finally:
                await mongo.close()
        return "\n".join([*report.lines, report.describe()])

    print(asyncio.run(run()))
    return 0


def _import_format(path: Path, wanted: str) -> str:
    """``extract`` or ``fhir``: as asked, else from the suffix, else from the first character."""
    if wanted != "auto":
        return wanted
    if path.suffix.lower() in {".csv", ".txt"}:
        return "extract"
    if path.suffix.lower() == ".json":
        return "fhir"
    with path.open("rb") as f:
        return "fhir" if f.read(64).lstrip().startswith(b"{") else "extract"


async def _import_paths(settings: Settings, paths: list[Path], wanted: str) -> int:
    from fhir_server.dmp.extract import ExtractError
    from fhir_server.dmp.importer import ExtractImporter, import_bundle
    from fhir_server.fhir.codec import parse_json
    from fhir_server.fhir.errors import FhirError
    from fhir_server.progress import Progress

    failed = 0
    async with _write_path(settings) as processor:
        for path in paths:
            try:
                if _import_format(path, wanted) == "fhir":
                    statuses = await import_bundle(processor, parse_json(path.read_bytes()))
                    done = ", ".join(f"{n} × {status}" for status, n in sorted(statuses.items()))
                    print(f"{path}: Bundle imported ({done or 'no entries'})")
                    continue
                with path.open("rb") as f:
                    total = max(sum(1 for _ in f) - 1, 0)
                importer = ExtractImporter(processor.service.repo, settings.terminology_dir, date.today())
                with (
                    Progress(total, f"import {path.name}", "lines") as bar,
                    path.open(encoding="utf-8", newline="") as f,
                ):
                    report = await importer.run(f, str(path), bar.advance)
                report_path = path.with_name(path.name + ".report.json")
                report_path.write_bytes(report.to_json())
                print(report.describe())
                print(f"report written to {report_path}")
            except (ExtractError, UnicodeDecodeError) as exc:
                print(f"fhir-server: {path}: {exc}", file=sys.stderr)
                failed += 1
            except FhirError as exc:
                print(f"fhir-server: {path}: {exc.outcome()['issue'][0]['diagnostics']}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


def _import_reimbursements(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging("WARNING")
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"fhir-server: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    return asyncio.run(_import_paths(settings, paths, args.format))


async def _run_export_workers(settings: Settings, count: int) -> None:
    import signal

    from fhir_server.auth.matrix import load_matrix
    from fhir_server.bulk.jobs import Jobs
    from fhir_server.bulk.worker import ExportWorker, worker_pool
    from fhir_server.search.engine import SearchEngine
    from fhir_server.storage.client import Mongo
    from fhir_server.storage.launcher import database
    from fhir_server.storage.repository import Repository

    matrix = load_matrix(settings.terminology_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with database(settings) as db:
        mongo = Mongo(db.uri, settings.mongo_db)
        try:
            repo = Repository(mongo)
            engine = SearchEngine(
                repo, settings.fhir_base, settings.page_link_ttl, settings.max_chain_matches
            )
            jobs = Jobs(mongo, settings.export_path, settings.export_lease)
            await jobs.ensure_indexes()
            workers = [ExportWorker(repo, engine, matrix, settings, jobs) for _ in range(count)]
            logging.getLogger("fhir_server.bulk").info("%d export workers started", count)
            async with worker_pool(workers):
                await stop.wait()
        finally:
            await mongo.close()


def _export_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging(settings.log_level)
    if args.workers < 1:
        print("fhir-server: --workers must be at least 1", file=sys.stderr)
        return 2
    asyncio.run(_run_export_workers(settings, args.workers))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-server", description="dmp-fhir: a FHIR R4 server for the DMP")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="embedded database directory (FHIR_DATA_DIR, default ./data)")

    serve = sub.add_parser("serve", help="run the FHIR server")
    serve.add_argument("--host", help="listen address (FHIR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (FHIR_PORT, default 8080)")
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="accept requests without an access token, with full access (local experiments only)",
    )
    data_dir(serve)
    serve.set_defaults(func=_serve)

    cap = sub.add_parser("capability", help="print the CapabilityStatement (as capability_statement.json)")
    cap.set_defaults(func=_capability)

    counts = sub.add_parser("counts", help="print the number of live resources of each type")
    data_dir(counts)
    counts.set_defaults(func=_counts)

    demo = sub.add_parser(
        "demo-data",
        help="generate synthetic French DMP data (deterministic): load it into the database, or --out DIR",
    )
    demo.add_argument("--patients", type=int, required=True, help="how many patients")
    demo.add_argument(
        "--seed", type=int, default=0, help="random seed (default 0); ids start with demo<seed>-"
    )
    demo.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=date.today(),
        help="the date the data ends at, YYYY-MM-DD (default today); the same seed and date give the same data",
    )
    demo.add_argument(
        "--out",
        help="write bundles.ndjson, reimbursements.csv and manifest.json here; the database is not touched",
    )
    demo.add_argument(
        "--extract",
        help="where to write the reimbursement extract (default OUT/reimbursements.csv, or "
        "demo-reimbursements-SEED.csv when loading)",
    )
    demo.add_argument(
        "--bundle-entries", type=int, default=500, help="most entries per transaction Bundle (default 500)"
    )
    data_dir(demo)
    demo.set_defaults(func=_demo_data)

    purge = sub.add_parser(
        "purge-closed",
        help="remove every version of the DMPs closed more than FHIR_DMP_RETENTION_YEARS (10) years ago",
    )
    purge.add_argument("--dry-run", action="store_true", help="say what would be purged; change nothing")
    purge.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=date.today(),
        help="count the retention period up to this date, YYYY-MM-DD (default today)",
    )
    data_dir(purge)
    purge.set_defaults(func=_purge_closed)

    imp = sub.add_parser(
        "import-reimbursements",
        help="import Assurance Maladie reimbursements: flat extracts (CSV) or FHIR Bundles (JSON)",
    )
    imp.add_argument("paths", nargs="+", metavar="PATH", help="extract or Bundle files")
    imp.add_argument(
        "--format",
        choices=("auto", "fhir", "extract"),
        default="auto",
        help="auto (default): .csv is an extract, .json a Bundle, otherwise by the first character",
    )
    data_dir(imp)
    imp.set_defaults(func=_import_reimbursements)

    worker = sub.add_parser(
        "export-worker", help="run $export workers (beside the server's own) until SIGTERM or Ctrl-C"
    )
    worker.add_argument("--workers", type=int, default=1, help="how many workers (default 1)")
    data_dir(worker)
    worker.set_defaults(func=_export_worker)

    from fhir_server.auth.cli import add_commands

    add_commands(sub, data_dir, _settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fhir-server`` console script."""
    args = _parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
