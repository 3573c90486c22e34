"""Search benchmark: four DMP query families over HTTP against a server holding synthetic French data.

Starts ``fhir-server serve`` on a free local port with a throw-away embedded database (or ``--keep DIR``),
loads ``bench/synthetic.py`` data in-process through the server's own bulk write path (validation and
indexing exactly as a create; ~41 resources per patient), then runs each query family with N concurrent
HTTP clients for S seconds, parameters drawn from the loaded data::

    python bench/search.py                 # 2,500 patients, over 100,000 resources
    python bench/search.py --patients 50   # a quick smoke run

Every response must be a 200 whose entries are exactly the expected resources (anything else counts as an
error). Before each timed phase the benchmark waits (up to 15 minutes) until no test suite runs on the
machine. Prints human-readable figures, then one JSON line with everything (the last line of output).
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import shutil
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from pymongo.errors import PyMongoError

from fhir_server.config import Settings
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.fhir.rest import ResourceService
from fhir_server.search.engine import SearchEngine
from fhir_server.search.index import index_specs
from fhir_server.search.plan import choose_lead
from fhir_server.search.request import parse_search
from fhir_server.storage.client import Mongo
from fhir_server.storage.launcher import start_database
from fhir_server.storage.lead import pipeline
from fhir_server.storage.repository import Repository

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

import crud  # noqa: E402
import synthetic  # noqa: E402

Json = dict[str, Any]

_DB_NAME = "fhir"
# 500 rather than 1,000: on the test VM a 1,000-resource transaction on a 50,000-document collection
# took long enough for the client to give up on it (see _BENCH_URI_OPTIONS).
_BATCH = 500
# The driver's monitor reads with connectTimeoutMS (default 20 s): when the embedded database does not
# answer a heartbeat for that long (a long commit, a VM stall), the driver marks it unknown and cancels
# every operation in flight ("operation cancelled"), which aborted a bulk load. The loader's own client
# (not the server's) waits longer.
_BENCH_URI_OPTIONS = "connectTimeoutMS=120000"
_LOAD_ATTEMPTS = 3
_WARMUP = 4
_QUIET_WAIT_S = float(os.environ.get("BENCH_QUIET_WAIT_S", 15 * 60))
_QUIET_POLL_S = 5.0
# Scanning the process table costs ~0.1 s of CPU on the test VM: not more often than this.
_WATCH_S = 5.0
_COUNT_TIMEOUT_S = 600.0
_HEADERS = {"Accept": "application/fhir+json"}
# Dates closer than this to a query's bounds are skipped when checking results: a bound without a time
# is read in some time zone, a document's instant in another.
_MARGIN = timedelta(days=1)


# --- what was loaded ------------------------------------------------------------------------------------


def _id(reference: str) -> str:
    return reference.rsplit("/", 1)[-1]


def fold(text: str) -> str:
    """Lower case, accents stripped (the client's own idea of what a name search ignores)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass
class PatientFacts:
    id: str
    family: str
    birth: str
    docs: list[tuple[str, str, datetime]] = field(default_factory=list)  # id, LOINC code, date
    eobs: list[tuple[str, datetime, str]] = field(default_factory=list)  # id, created, provider id
    allergies: list[str] = field(default_factory=list)
    meds: list[str] = field(default_factory=list)


class Facts:
    """The stored resources, as the queries and their checks need them (server ids)."""

    def __init__(self) -> None:
        self.patients: dict[str, PatientFacts] = {}
        self.by_birth: dict[str, list[PatientFacts]] = collections.defaultdict(list)
        self.counts: collections.Counter[str] = collections.Counter()
        self.pool: list[PatientFacts] = []

    def add(self, stored: list[Json]) -> None:
        for r in stored:
            rtype = r["resourceType"]
            self.counts[rtype] += 1
            if rtype == "Patient":
                p = PatientFacts(r["id"], r["name"][0]["family"], r["birthDate"])
                self.patients[p.id] = p
                self.by_birth[p.birth].append(p)
                self.pool.append(p)
            elif rtype == "DocumentReference":
                self.patients[_id(r["subject"]["reference"])].docs.append(
                    (r["id"], r["type"]["coding"][0]["code"], synthetic.utc(r["date"]))
                )
            elif rtype == "ExplanationOfBenefit":
                self.patients[_id(r["patient"]["reference"])].eobs.append(
                    (r["id"], synthetic.utc(r["created"]), _id(r["provider"]["reference"]))
                )
            elif rtype == "AllergyIntolerance":
                self.patients[_id(r["patient"]["reference"])].allergies.append(r["id"])
            elif rtype == "MedicationStatement":
                self.patients[_id(r["subject"]["reference"])].meds.append(r["id"])


# --- the query families ---------------------------------------------------------------------------------

Check = Callable[[Json], str | None]


@dataclass
class Query:
    params: list[tuple[str, str]]
    check: Check


def _split(bundle: Json) -> tuple[list[Json], list[Json], str | None]:
    """Match and include resources; a problem with the Bundle itself, if any."""
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
        return [], [], "not a searchset Bundle"
    matches, included = [], []
    for entry in bundle.get("entry", []):
        mode = entry.get("search", {}).get("mode")
        (matches if mode == "match" else included).append(entry["resource"])
    if any(link.get("relation") == "next" for link in bundle.get("link", [])):
        return matches, included, "more than one page"
    if bundle.get("total") != len(matches):
        return matches, included, f"total {bundle.get('total')} but {len(matches)} matches"
    return matches, included, None


def _ids(resources: list[Json], rtype: str) -> set[str] | None:
    """The ids, or None when some resource is not of ``rtype``."""
    if any(r.get("resourceType") != rtype for r in resources):
        return None
    return {r["id"] for r in resources}


def _compare(what: str, got: set[str] | None, must: set[str], may: set[str] | None = None) -> str | None:
    """``got`` holds all of ``must`` and nothing outside ``must | may``."""
    if got is None:
        return f"{what}: a resource of another type"
    missing, extra = must - got, got - must - (may or set())
    if missing or extra:
        return f"{what}: {len(missing)} missing, {len(extra)} unexpected (of {len(must)} expected)"
    return None


def pick_documents(rng: random.Random, facts: Facts, today: date) -> Query:
    """A patient's documents of one type over a date range holding at least one of them."""
    p = rng.choice(facts.pool)
    _, code, when = rng.choice(p.docs)
    same_type = [(i, w) for i, c, w in p.docs if c == code]
    start, end = date(2000, 1, 1), today + timedelta(days=2)
    for _ in range(20):
        span = timedelta(days=rng.choice([90, 180, 365, 730]))
        lo = datetime.combine(when.date(), datetime.min.time(), UTC) - span * rng.random()
        lo = lo.replace(hour=0, minute=0, second=0, microsecond=0)
        hi = lo + span
        bounds = (lo, hi)
        if lo + _MARGIN <= when < hi - _MARGIN and all(
            abs(w - b) > _MARGIN for _, w in same_type for b in bounds
        ):
            start, end = lo.date(), hi.date()
            break
    lo_dt = datetime.combine(start, datetime.min.time(), UTC)
    hi_dt = datetime.combine(end, datetime.min.time(), UTC)
    expected = {i for i, w in same_type if lo_dt <= w < hi_dt}
    params = [
        ("patient", p.id),
        ("type", f"{synthetic.LOINC}|{code}"),
        ("date", f"ge{start.isoformat()}"),
        ("date", f"lt{end.isoformat()}"),
    ]

    def check(bundle: Json) -> str | None:
        matches, included, problem = _split(bundle)
        if problem or included:
            return problem or "unexpected included resources"
        if not expected:
            return "no expected document (query builder)"
        return _compare("documents", _ids(matches, "DocumentReference"), expected)

    return Query(params, check)


def pick_claims(rng: random.Random, facts: Facts, today: date) -> Query:
    """A patient's reimbursements of the last 12 months, with their providers."""
    p = rng.choice(facts.pool)
    since = today - timedelta(days=365)
    cut = datetime.combine(since, datetime.min.time(), UTC)
    must = {i for i, w, _ in p.eobs if w >= cut + _MARGIN}
    may = {i for i, w, _ in p.eobs if w >= cut - _MARGIN}
    params = [
        ("patient", p.id),
        ("created", f"ge{since.isoformat()}"),
        ("_include", "ExplanationOfBenefit:provider"),
    ]

    def check(bundle: Json) -> str | None:
        matches, included, problem = _split(bundle)
        if problem:
            return problem
        wrong = _compare("claims", _ids(matches, "ExplanationOfBenefit"), must, may)
        if wrong:
            return wrong
        providers = {_id(r["provider"]["reference"]) for r in matches}
        return _compare("providers", _ids(included, "Organization"), providers)

    return Query(params, check)


def _name_starts(family: str, prefix: str) -> bool:
    folded = fold(family)
    tails = [folded] + [folded[i + 1 :] for i, ch in enumerate(folded) if ch in " -"]
    return any(t.startswith(prefix) for t in tails)


def pick_patients(rng: random.Random, facts: Facts, today: date) -> Query:
    """Patients by the first letters of a family name and a birth date, both of a real patient."""
    p = rng.choice(facts.pool)
    prefix = fold(p.family)[: rng.choice([3, 4])].rstrip(" -")
    expected = {q.id for q in facts.by_birth[p.birth] if _name_starts(q.family, prefix)}
    params = [("family", prefix), ("birthdate", p.birth)]

    def check(bundle: Json) -> str | None:
        matches, included, problem = _split(bundle)
        if problem or included:
            return problem or "unexpected included resources"
        return _compare("patients", _ids(matches, "Patient"), expected)

    return Query(params, check)


def pick_patient_summary(rng: random.Random, facts: Facts, today: date) -> Query:
    """One patient with its allergies and medications."""
    p = rng.choice(facts.pool)
    params = [
        ("_id", p.id),
        ("_revinclude", "AllergyIntolerance:patient"),
        ("_revinclude", "MedicationStatement:subject"),
    ]

    def check(bundle: Json) -> str | None:
        matches, included, problem = _split(bundle)
        if problem:
            return problem
        wrong = _compare("patient", _ids(matches, "Patient"), {p.id})
        allergies = _ids(
            [r for r in included if r.get("resourceType") == "AllergyIntolerance"], "AllergyIntolerance"
        )
        meds = _ids(
            [r for r in included if r.get("resourceType") != "AllergyIntolerance"], "MedicationStatement"
        )
        return (
            wrong
            or _compare("allergies", allergies, set(p.allergies))
            or _compare("medications", meds, set(p.meds))
        )

    return Query(params, check)


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    rtype: str
    pick: Callable[[random.Random, Facts, date], Query]


FAMILIES = [
    Family("documents", "a patient's documents by type and date range", "DocumentReference", pick_documents),
    Family(
        "claims", "a patient's EOBs over 12 months, provider included", "ExplanationOfBenefit", pick_claims
    ),
    Family("patients", "Patient by family-name prefix + birthdate", "Patient", pick_patients),
    Family("summary", "a patient with allergies and medications", "Patient", pick_patient_summary),
]


@dataclass
class Tally:
    """Per family, beyond crud's figures: entries returned and responses whose content was checked."""

    responses: int = 0
    entries: int = 0
    verified: int = 0
    example: str = ""


def make_worker(family: Family, facts: Facts, today: date, tally: Tally) -> Any:
    """A worker with the signature :func:`crud.run_phase` expects."""

    async def worker(
        client: httpx.AsyncClient, base: str, deadline: float, seed: int, result: crud.PhaseResult, _: Any
    ) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            query = family.pick(rng, facts, today)
            request = client.build_request(
                "GET", f"{base}/{family.rtype}", params=query.params, headers=_HEADERS
            )
            tally.example = tally.example or str(request.url)
            response = await crud._timed(client, result, request)
            if response is None:
                continue
            if response.status_code != 200:
                result.record_error(str(response.status_code), response.text)
                continue
            try:
                bundle = orjson.loads(response.content)
            except orjson.JSONDecodeError as exc:
                result.record_error("bad-json", str(exc))
                continue
            tally.responses += 1
            tally.entries += len(bundle.get("entry", []))
            problem = query.check(bundle)
            if problem:
                result.record_error("wrong-result", f"{request.url}: {problem}")
            else:
                tally.verified += 1

    return worker


# --- a quiet machine ------------------------------------------------------------------------------------


def _other_test_runs() -> list[str]:
    """Test suites running on this machine (``python -m pytest`` or the ``pytest`` script)."""
    mine = {psutil.Process().pid}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if proc.info["pid"] in mine or not cmd:
            continue
        line = " ".join(cmd)
        if "python -m pytest" in line or any(Path(a).name == "pytest" for a in cmd[:2]):
            found.append(f"{proc.info['pid']} {line[:100]}")
    return found


async def wait_quiet(label: str) -> dict[str, Any]:
    """Wait until no test suite runs (at most 15 minutes); say so while waiting."""
    started = time.monotonic()
    runs = _other_test_runs()
    announced = False
    while runs and time.monotonic() - started < _QUIET_WAIT_S:
        if not announced:
            print(f"waiting before {label}: other test runs in progress: {runs}", flush=True)
            announced = True
        await asyncio.sleep(_QUIET_POLL_S)
        runs = _other_test_runs()
    waited = round(time.monotonic() - started, 1)
    if announced:
        print(
            f"  waited {waited} s"
            + (f"; STILL RUNNING, measuring anyway: {runs}" if runs else "; machine quiet"),
            flush=True,
        )
    return {"waited_s": waited, "test_runs_at_start": runs}


async def watch_tests(stop: asyncio.Event, seen: set[str]) -> None:
    """During a phase: every test run seen (their figures would be polluted by it)."""
    while not stop.is_set():
        seen.update(await asyncio.to_thread(_other_test_runs))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _WATCH_S)


# --- load -----------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    facts: Facts
    mongo: Mongo
    engine: SearchEngine
    figures: dict[str, Any]


def retrying(create_many: synthetic.CreateMany, mongo: Mongo) -> synthetic.CreateMany:
    """``create_many`` retried when a batch failed without storing anything (checked by the counts)."""

    async def run(batch: list[Json]) -> list[Any]:
        types = sorted({r["resourceType"] for r in batch})
        for attempt in range(1, _LOAD_ATTEMPTS + 1):
            before = {t: await mongo.db[t].estimated_document_count() for t in types}
            try:
                return await create_many(batch)
            except PyMongoError as exc:
                after = {t: await mongo.db[t].estimated_document_count() for t in types}
                stored = after != before
                print(
                    f"\nbatch of {len(batch)} failed (attempt {attempt}): {type(exc).__name__}: {exc}; "
                    + ("it was stored anyway: giving up" if stored else "nothing stored: retrying"),
                    file=sys.stderr,
                    flush=True,
                )
                if stored or attempt == _LOAD_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    return run


async def load(server: crud.Server, patients: int, seed: int, today: date) -> Loaded:
    """Reach the server's embedded database and store the synthetic data through its bulk create path."""
    assert server.data_dir is not None
    db = await start_database(Settings(data_dir=server.data_dir, mongo_uri=""))
    if db.owned:
        # Not the server's database: this process would have to stop it. Never expected.
        raise RuntimeError("the server's embedded database was not found in its data directory")
    sep = "&" if "?" in db.uri else "?"
    mongo = Mongo(f"{db.uri}{sep}{_BENCH_URI_OPTIONS}", _DB_NAME)
    await mongo.open(index_specs(SERVED_TYPES))
    repo = Repository(mongo)
    engine = SearchEngine(repo, f"{server.url}/fhir", 3600)
    service = ResourceService(repo, engine)
    facts = Facts()
    total = synthetic.expected_total(patients, seed)
    dbs = crud.db_processes(server.pid) if server.pid is not None else []
    print(
        f"\nloading {total:,} resources for {patients:,} patients (seed {seed}) in batches of {_BATCH:,}",
        flush=True,
    )
    seen: set[str] = set()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_tests(stop, seen))
    before = crud.sample_cpu(server.pid, dbs)
    started = time.monotonic()
    progress = synthetic.Progress(total)
    try:
        await synthetic.load(
            retrying(service.create_many, mongo),
            synthetic.generate(patients, seed, _BATCH, today),
            facts.add,
            progress,
        )
    finally:
        progress.close()
        stop.set()
        await watcher
    elapsed = time.monotonic() - started
    after = crud.sample_cpu(server.pid, dbs)
    loaded = sum(facts.counts.values())

    def per_resource_ms(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or not loaded else round((b - a) / loaded * 1000, 2)

    figures = {
        "patients": patients,
        "seed": seed,
        "today": today.isoformat(),
        "resources": loaded,
        "by_type": dict(sorted(facts.counts.items())),
        "batch": _BATCH,
        "seconds": round(elapsed, 1),
        "resources_per_s": round(loaded / elapsed, 1),
        "bench_cpu_ms_per_resource": per_resource_ms(before.bench, after.bench),
        "db_cpu_ms_per_resource": per_resource_ms(before.db, after.db),
        "test_runs_during": sorted(seen),
    }
    print(
        f"loaded    {loaded:,} resources in {figures['seconds']} s ({figures['resources_per_s']:,} resources/s); "
        f"cpu per resource: bench (validation, indexing) {crud._fmt(figures['bench_cpu_ms_per_resource'], ' ms')}, "
        f"db {crud._fmt(figures['db_cpu_ms_per_resource'], ' ms')}"
    )
    if seen:
        print(f"          NOISY: test runs during the load: {sorted(seen)}")
    print(f"          {figures['by_type']}")
    return Loaded(facts, mongo, engine, figures)


async def server_counts(server: crud.Server, expected: collections.Counter[str]) -> dict[str, Any]:
    """What the server reports (``_summary=count``) per type, next to what was loaded."""
    out: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    # An unfiltered count reads every live resource of the type: far slower than any search measured here.
    async with httpx.AsyncClient(timeout=_COUNT_TIMEOUT_S, headers=server.headers) as client:
        for rtype in sorted(expected):
            started = time.perf_counter()
            r = await client.get(f"{server.url}/fhir/{rtype}", params={"_summary": "count"}, headers=_HEADERS)
            seconds[rtype] = round(time.perf_counter() - started, 2)
            out[rtype] = r.json().get("total") if r.status_code == 200 else f"HTTP {r.status_code}"
    mismatched = {t: (out[t], expected[t]) for t in out if out[t] != expected[t]}
    print(f"server counts {'match the load' if not mismatched else f'DIFFER (server, loaded): {mismatched}'}")
    print(f"          _summary=count took (s): {seconds}")
    return {"per_type": out, "mismatched": mismatched, "seconds": seconds}


# --- query plans ----------------------------------------------------------------------------------------


def _plan_stages(plan: Any) -> list[str]:
    """The stages of a winning plan, outermost first, with their index names."""
    out: list[str] = []
    stack = [plan]
    while stack:
        node = stack.pop(0)
        if not isinstance(node, dict):
            continue
        stage = node.get("stage") or node.get("queryPlan", {}).get("stage")
        if stage:
            out.append(stage + (f"({node['indexName']})" if node.get("indexName") else ""))
        for key in ("queryPlan", "inputStage"):
            if isinstance(node.get(key), dict):
                stack.append(node[key])
        stack.extend(node.get("inputStages", []))
    return out


async def explain(loaded: Loaded, today: date) -> dict[str, Any]:
    """The database's plan for one query of each family (main filter, default sort)."""
    rng = random.Random(7)
    out: dict[str, Any] = {}
    for family in FAMILIES:
        query = family.pick(rng, loaded.facts, today)
        try:
            req = parse_search(family.rtype, query.params, default_count=50, max_count=1000)
            filt = await loaded.engine.filter_for(req)
            lead = choose_lead(family.rtype, filt)
            stages = pipeline({**filt, "del": False}, lead, [("_id", 1)], 51)
            command: Json = {
                "explain": {"aggregate": family.rtype, "pipeline": stages, "cursor": {}},
                "verbosity": "executionStats",
            }
            result = await loaded.mongo.db.command(command)
            cursor = next((s["$cursor"] for s in result.get("stages", []) if "$cursor" in s), result)
            stats = cursor.get("executionStats", {})
            out[family.key] = {
                "filter": repr(filt)[:600],
                "lead": repr(lead),
                "plan": _plan_stages(cursor.get("queryPlanner", {}).get("winningPlan")),
                "returned": stats.get("nReturned"),
                "keys_examined": stats.get("totalKeysExamined"),
                "docs_examined": stats.get("totalDocsExamined"),
                "ms": stats.get("executionTimeMillis"),
            }
        except Exception as exc:  # the plan is informative only: report, never fail the run for it
            out[family.key] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    for key, plan in out.items():
        print(f"  explain {key:<10} {json.dumps(plan, ensure_ascii=False, default=str)}")
    return out


# --- phases ---------------------------------------------------------------------------------------------


async def warm_up(family: Family, server: crud.Server, facts: Facts, today: date) -> list[float]:
    """A few sequential requests before the timed phase (their latencies are reported, not counted)."""
    rng = random.Random(99)
    out = []
    async with httpx.AsyncClient(timeout=crud._REQUEST_TIMEOUT_S, headers=server.headers) as client:
        for _ in range(_WARMUP):
            query = family.pick(rng, facts, today)
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await client.get(f"{server.url}/fhir/{family.rtype}", params=query.params, headers=_HEADERS)
            out.append(round((time.perf_counter() - started) * 1000, 1))
    return out


async def run_family(
    family: Family, server: crud.Server, facts: Facts, today: date, clients: int, seconds: float
) -> dict[str, Any]:
    quiet = await wait_quiet(family.key)
    warmup = await warm_up(family, server, facts, today)
    tally = Tally()
    seen: set[str] = set()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_tests(stop, seen))
    worker = make_worker(family, facts, today, tally)
    r = await crud.run_phase(family.key, worker, server, clients, seconds, facts.pool)
    stop.set()
    await watcher
    r.update(
        title=family.title,
        example_url=tally.example,
        responses_checked=tally.verified,
        entries_per_response=round(tally.entries / tally.responses, 2) if tally.responses else None,
        test_runs_during=sorted(seen),
        quiet_wait=quiet,
        warmup_ms=warmup,
    )
    crud.print_phase(r)
    print(f"  entries     {r['entries_per_response']} per response; {tally.verified} responses checked exact")
    print(f"  warm-up     {_WARMUP} untimed sequential requests first: {warmup} ms")
    if seen:
        print(f"  NOISY: test runs during the phase: {sorted(seen)}")
    print(f"  example     {tally.example}")
    return r


async def bench(args: argparse.Namespace) -> int:
    server = crud.start_server(args.keep)
    today = date.today()
    settings = {
        "url": server.url,
        "server_pid": server.pid,
        "data_dir": str(server.data_dir),
        "data_dir_kept": not server.temp_dir,
        "patients": args.patients,
        "seed": args.seed,
        "clients": args.clients,
        "seconds_per_family": args.seconds,
        "connections": f"one shared httpx pool, {args.clients} keep-alive HTTP/1.1 connections",
        "server_env": "FHIR_ACCESS_LOG=false, other FHIR_* unset (embedded database)",
    }
    print(f"machine   {json.dumps(crud.machine(), ensure_ascii=False)}")
    print(f"settings  {json.dumps(settings, ensure_ascii=False)}")
    phases: list[dict[str, Any]] = []
    load_figures: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    plans: dict[str, Any] = {}
    failure: str | None = None
    stop: dict[str, Any] = {}
    dbs: list[int] = []
    loaded: Loaded | None = None
    try:
        await crud._wait_healthy(server.url, server.process)
        crud.authorize(server)
        dbs = [p.pid for p in crud.db_processes(server.pid)] if server.pid is not None else []
        loaded = await load(server, args.patients, args.seed, today)
        load_figures = loaded.figures
        counts = await server_counts(server, loaded.facts.counts)
        if counts["mismatched"]:
            failure = "the server does not count what was loaded"
        print("\nquery plans (one query per family):")
        plans = await explain(loaded, today)
        for family in FAMILIES:
            phases.append(await run_family(family, server, loaded.facts, today, args.clients, args.seconds))
            if server.process is not None and server.process.poll() is not None:
                failure = f"the server exited with code {server.process.returncode} during {family.key}"
                break
    except Exception as exc:  # reported with the figures so far; the server is stopped below in any case
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        if loaded is not None:
            await loaded.mongo.close()
        stop = crud.stop_server(server, dbs)
        print("\n" + crud.describe_stop(stop))

    errors = sum(p["errors"] for p in phases)
    log_problems = server.log.problems if server.log else 0
    abnormal_stop = stop["killed"] or stop["orphan_db_pids"] or stop["exit_code"] not in (0, None)
    unhealthy = failure is not None or errors > 0 or log_problems > 0 or bool(abnormal_stop)
    if failure:
        print(f"\nFAILURE: {failure}")
    if server.log is not None:
        print(f"server output: {server.log.lines} lines, {log_problems} with ERROR/Traceback/Exception")
        if unhealthy:
            crud._print_tail("server output", list(server.log.tail))
            crud._print_tail("embedded database log", crud.db_tail(server))
    print("\nsummary (per family: req/s, p50/p95/p99 ms, server+db cpu ms per search, entries per response):")
    for p in phases:
        print(
            f"  {p['phase']:<10} {p['throughput_rps']:>8} req/s  p50 {p['p50_ms']}  p95 {p['p95_ms']}  "
            f"p99 {p['p99_ms']}  cpu server {crud._fmt(p['server_cpu_ms_per_req'])} db "
            f"{crud._fmt(p['db_cpu_ms_per_req'])}  entries {p['entries_per_response']}  errors {p['errors']}"
            f"  stalls {p['client_stalls']}"
        )
    if server.temp_dir and server.data_dir is not None:
        shutil.rmtree(server.data_dir, ignore_errors=True)
    summary = {
        "machine": crud.machine(),
        "settings": settings,
        "load": load_figures,
        "server_counts": counts,
        "plans": plans,
        "phases": phases,
        "stop": stop,
        "server_log_lines": server.log.lines if server.log else None,
        "server_log_problem_lines": log_problems,
        "failure": failure,
    }
    print(json.dumps(summary, ensure_ascii=False, default=str))
    return 1 if unhealthy else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2500, help="synthetic patients (default 2500)")
    parser.add_argument("--seed", type=int, default=1, help="data set seed (default 1)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each family (default 10)")
    parser.add_argument("--keep", metavar="DIR", help="data directory to use and keep (must be empty or new)")
    args = parser.parse_args()
    if args.patients < 1 or args.clients < 1 or args.seconds <= 0:
        parser.error("--patients and --clients must be at least 1, --seconds positive")
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        parser.error(f"--keep {args.keep}: the directory is not empty")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
