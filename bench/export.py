"""Export benchmark: ``$export`` throughput and the server's memory, against a raw PyMongo scan.

Starts ``fhir-server serve`` (its own export worker pool, embedded database) on a free local port, stores
``bench/synthetic.py`` data straight through the repository's bulk path (index values derived as a create
would, no validation: the server's indexed create path is far slower than what is measured here), then:

1. a system export (``[base]/$export``, every type) and a Group export (``Group/[id]/$export`` of a tenth of
   the patients), each timed from kick-off to the manifest, while the server's RSS is sampled;
2. the same collections read by a minimal script: a PyMongo cursor over each type's collection, every
   live resource written to an NDJSON file (the floor any export pays).

Every exported file is downloaded and its lines counted against what was stored::

    python bench/export.py                   # 2,000 patients, about 85,000 resources
    python bench/export.py --patients 25000  # about 1,000,000 resources
    python bench/export.py --keep DIR        # keep the data; a later run with the same DIR skips the load

Prints figures, then one JSON line with all of them. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pymongo

from fhir_server.config import Settings
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.fhir.rest import new_version
from fhir_server.search.index import index_specs
from fhir_server.storage.client import Mongo
from fhir_server.storage.launcher import start_database
from fhir_server.storage.repository import Repository

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

import crud  # noqa: E402
import synthetic  # noqa: E402

Json = dict[str, Any]
_DB_NAME = "fhir"
_BATCH = 1000
_KICK_OFF = {"Accept": "application/fhir+json", "Prefer": "respond-async"}
_SAMPLE_S = 0.1
_RAW_MEMBERS_PER_CURSOR = 8


class RssSampler:
    """Samples a process's RSS in a thread; ``peak`` is the highest seen since ``start``."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(_SAMPLE_S)

    def start(self) -> int:
        base = self.proc.memory_info().rss
        self.peak = base
        self._thread.start()
        return base

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


async def load(
    data_dir: Path, patients: int, seed: int, today: date
) -> tuple[Mongo, str, dict[str, int], list[str]]:
    """Store the synthetic data through ``Repository.put_many``; counts per type and the patient ids."""
    db = await start_database(Settings(data_dir=data_dir, mongo_uri=""))
    if db.owned:
        raise RuntimeError("the server's embedded database was not found in its data directory")
    sep = "&" if "?" in db.uri else "?"
    mongo = Mongo(f"{db.uri}{sep}connectTimeoutMS=120000", _DB_NAME)
    await mongo.open(index_specs(SERVED_TYPES))
    repo = Repository(mongo)
    counts: dict[str, int] = {}
    patient_ids: list[str] = []
    total = synthetic.expected_total(patients, seed)
    progress = synthetic.Progress(total)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        for batch in synthetic.generate(patients, seed, _BATCH, today):
            versions = [new_version(r["resourceType"], r["id"], r, "create", 1, now) for r in batch]
            await repo.put_many(versions, None)
            for r in batch:
                counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
                if r["resourceType"] == "Patient":
                    patient_ids.append(r["id"])
            progress.add(len(batch))
    finally:
        progress.close()
    return mongo, db.uri, counts, patient_ids


async def run_export(server: crud.Server, path: str, sampler: RssSampler) -> dict[str, Any]:
    """Kick off ``path``, poll until done, download every file; timings, counts and memory."""
    async with httpx.AsyncClient(base_url=f"{server.url}/fhir/", headers=server.headers, timeout=600) as c:
        base_rss = sampler.start()
        started = time.perf_counter()
        r = await c.get(path, headers=_KICK_OFF)
        if r.status_code != 202:
            raise RuntimeError(f"kick-off {path}: HTTP {r.status_code} {r.text[:300]}")
        status = r.headers["Content-Location"]
        while (r := await c.get(status)).status_code == 202:
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        peak = sampler.stop()
        if r.status_code != 200:
            raise RuntimeError(f"export {path}: HTTP {r.status_code} {r.text[:300]}")
        manifest = r.json()
        declared: dict[str, int] = {}
        lines: dict[str, int] = {}
        size = 0
        for item in manifest["output"]:
            declared[item["type"]] = declared.get(item["type"], 0) + item["count"]
            body = (await c.get(item["url"], headers={"Accept-Encoding": "identity"})).content
            size += len(body)
            lines[item["type"]] = lines.get(item["type"], 0) + body.count(b"\n")
        await c.delete(status)
    exported = sum(declared.values())
    return {
        "path": path,
        "transaction_time": manifest["transactionTime"],
        "resources": exported,
        "seconds": round(elapsed, 2),
        "resources_per_s": round(exported / elapsed, 1),
        "files": len(manifest["output"]),
        "bytes": size,
        "by_type": dict(sorted(declared.items())),
        "lines_match_counts": lines == declared,
        "server_rss_mb_before": round(base_rss / 2**20, 1),
        "server_rss_mb_peak": round(peak / 2**20, 1),
        "server_rss_mb_growth": round((peak - base_rss) / 2**20, 1),
    }


def raw_scan(uri: str, types: list[str], out_dir: Path, patients: list[str] | None = None) -> dict[str, Any]:
    """The minimal script: a PyMongo cursor per collection, each live resource written as one NDJSON line.

    For a group of patients, a cursor per few members (a resource in several compartments written
    once): SecantusDB checks every value of an ``$in`` on every document, so one cursor over all the
    members of a large group is many times slower, and would flatter the export."""
    client: pymongo.MongoClient[Json] = pymongo.MongoClient(uri, tz_aware=True, connectTimeoutMS=120_000)
    db = client[_DB_NAME]
    started = time.perf_counter()
    n = 0
    queries: list[Json] = [{"del": False}]
    if patients is not None:
        step = _RAW_MEMBERS_PER_CURSOR
        queries = [
            {"del": False, "comp": {"$in": patients[i : i + step]}} for i in range(0, len(patients), step)
        ]
    for rtype in types:
        seen: set[str] = set()
        with (out_dir / f"{rtype}.ndjson").open("wb") as f:
            for query in queries:
                for doc in db[rtype].find(query, {"res": 1}, batch_size=_BATCH):
                    if doc["_id"] in seen:
                        continue
                    if patients is not None:
                        seen.add(doc["_id"])
                    f.write(orjson.dumps(doc["res"]))
                    f.write(b"\n")
                    n += 1
    elapsed = time.perf_counter() - started
    client.close()
    return {"resources": n, "seconds": round(elapsed, 2), "resources_per_s": round(n / elapsed, 1)}


async def _stored(
    server: crud.Server, args: argparse.Namespace, today: date
) -> tuple[Mongo, str, Json, list[str]]:
    """The data set: loaded now, or (``--keep`` of an earlier run) found with what that run recorded."""
    assert server.data_dir is not None
    marker = server.data_dir.with_name(server.data_dir.name + ".bench-export.json")
    if marker.exists():
        known = orjson.loads(marker.read_bytes())
        db = await start_database(Settings(data_dir=server.data_dir, mongo_uri=""))
        mongo = Mongo(db.uri, _DB_NAME)
        print(f"reusing   the data of {marker} ({known['patients']} patients)")
        return mongo, db.uri, {**known["stored"], "reused": str(marker)}, known["patient_ids"]
    started = time.monotonic()
    mongo, uri, counts, patient_ids = await load(server.data_dir, args.patients, args.seed, today)
    stored = {
        "resources": sum(counts.values()),
        "seconds": round(time.monotonic() - started, 1),
        "by_type": counts,
    }
    if args.keep:
        marker.write_bytes(
            orjson.dumps({"patients": args.patients, "stored": stored, "patient_ids": patient_ids})
        )
    return mongo, uri, stored, patient_ids


async def bench(args: argparse.Namespace) -> int:
    server = crud.start_server(args.keep)
    today = date.today()
    print(f"machine   {json.dumps(crud.machine(), ensure_ascii=False)}")
    figures: dict[str, Any] = {"patients": args.patients, "seed": args.seed}
    dbs: list[int] = []
    failure: str | None = None
    mongo: Mongo | None = None
    try:
        await crud._wait_healthy(server.url, server.process)
        crud.authorize(server)
        assert server.pid is not None and server.data_dir is not None
        dbs = [p.pid for p in crud.db_processes(server.pid)]
        mongo, uri, figures["stored"], patient_ids = await _stored(server, args, today)
        stored = figures["stored"]["resources"]
        print(
            f"stored    {stored:,} resources in {figures['stored']['seconds']} s: {figures['stored']['by_type']}"
        )
        members = patient_ids[: max(1, len(patient_ids) // 10)]
        group = {
            "resourceType": "Group",
            "id": "bench-group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{p}"}} for p in members],
        }
        if await mongo.db["Group"].find_one({"_id": "bench-group"}) is None:
            await Repository(mongo).put_many(
                [new_version("Group", "bench-group", group, "create", 1, datetime.now(UTC))], None
            )
        sampler_pid = server.pid
        system = await run_export(server, "$export", RssSampler(sampler_pid))
        print(f"system    {_describe(system)}")
        grouped = await run_export(server, "Group/bench-group/$export", RssSampler(sampler_pid))
        print(f"group     {_describe(grouped)} ({len(members)} patients)")
        with tempfile.TemporaryDirectory(prefix="raw-export-") as tmp:
            raw = await asyncio.to_thread(raw_scan, uri, sorted(system["by_type"]), Path(tmp))
            raw_group = await asyncio.to_thread(raw_scan, uri, sorted(grouped["by_type"]), Path(tmp), members)
        print(
            f"raw scan  {raw['resources']:,} resources in {raw['seconds']} s = {raw['resources_per_s']:,}/s"
        )
        print(
            f"raw group {raw_group['resources']:,} resources in {raw_group['seconds']} s = {raw_group['resources_per_s']:,}/s"
        )
        figures.update(
            system_export=system,
            group_export=grouped,
            group_patients=len(members),
            raw_scan=raw,
            raw_group_scan=raw_group,
            ratio_system=round(system["resources_per_s"] / raw["resources_per_s"], 2),
            ratio_group=round(grouped["resources_per_s"] / raw_group["resources_per_s"], 2),
        )
        print(
            f"ratio     system {figures['ratio_system']}, group {figures['ratio_group']} (export / raw scan)"
        )
        # A reused data set also holds the traces of earlier runs: count what was live at the kick-off.
        live = stored + 1 if "reused" not in figures["stored"] else await _live_at(mongo, system)
        if system["resources"] != live or not system["lines_match_counts"]:
            failure = f"the system export gave {system['resources']} resources, {live} are stored"
        if grouped["resources"] != raw_group["resources"]:
            failure = f"the Group export gave {grouped['resources']} resources, the raw scan {raw_group['resources']}"
    except Exception as exc:  # reported with the figures so far; the server is stopped below in any case
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        if mongo is not None:
            await mongo.close()
        stop = crud.stop_server(server, dbs)
        print(crud.describe_stop(stop))
        if server.temp_dir and server.data_dir is not None:
            shutil.rmtree(server.data_dir, ignore_errors=True)
    if failure:
        print(f"FAILURE: {failure}")
        if server.log is not None:
            crud._print_tail("server output", list(server.log.tail))
    figures["failure"] = failure
    print(json.dumps(figures, ensure_ascii=False))
    return 1 if failure else 0


async def _live_at(mongo: Mongo, export: dict[str, Any]) -> int:
    """Resources of the exported types live at the export's transactionTime (nothing here is updated
    or deleted after its load: a resource live then is live now and written by then)."""
    tt = datetime.fromisoformat(export["transaction_time"].replace("Z", "+00:00"))
    query = {"del": False, "lu": {"$lte": tt}}
    return sum([await mongo.db[t].count_documents(query) for t in SERVED_TYPES])


def _describe(r: dict[str, Any]) -> str:
    return (
        f"{r['resources']:,} resources in {r['seconds']} s = {r['resources_per_s']:,}/s, {r['files']} files, "
        f"server RSS {r['server_rss_mb_before']} -> peak {r['server_rss_mb_peak']} MB (+{r['server_rss_mb_growth']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--patients", type=int, default=2000, help="synthetic patients (~41 resources each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--keep", metavar="DIR", help="data directory to use and keep (reused when it holds a run)"
    )
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
