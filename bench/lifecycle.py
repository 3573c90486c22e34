"""DMP lifecycle benchmark: what the DMP write rules cost, and how long ``$dmp-statistics`` takes.

Starts a server on a throw-away embedded database (or uses ``--url``) and runs concurrent phases of
``--seconds`` each with ``--clients`` clients:

1. ``patient-plain``: Patients without an INS (the rules only look for one);
2. ``dmp-open``: DMP openings, i.e. Patients with a valid, never-repeated INS-NIR and the ``pharmacie``
   channel (INS check, INS claim, lifecycle record, and the opening Consent the server records);
3. ``dmp-write``: AllergyIntolerances into the opened DMPs (the closed-DMP check on every write).

Then ``GET $dmp-statistics`` ``--stat-calls`` times over what was created (its latency grows with the
number of DMPs and documents). Per phase: requests/s, p50/p95/p99 and server/database CPU per request.

::

    python bench/lifecycle.py [--clients N] [--seconds N] [--stat-calls N]

Prints the figures per phase, then one JSON line with everything (the last line of output). Only
127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

import crud  # noqa: E402

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
CHANNEL = "https://dmp-fhir.org/StructureDefinition/dmp-creation-channel"
CHANNELS = "https://dmp-fhir.org/CodeSystem/dmp-creation-channel"
_HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
# Unique NIRs across workers: département and commune/order number from one counter.
_SERIAL = itertools.count()


def _nir(gender: str, birth: str) -> str:
    n = next(_SERIAL)
    body = f"{1 if gender == 'male' else 2}{birth[2:4]}{birth[5:7]}{10 + n // 10**6:02d}{n % 10**6:06d}"
    return f"{body}{97 - int(body) % 97:02d}"


def _dmp(rng: random.Random) -> dict[str, Any]:
    res = crud.patient(rng)
    res["identifier"] = [
        {"use": "official", "system": INS_NIR, "value": _nir(res["gender"], res["birthDate"])}
    ]
    res["extension"] = [{"url": CHANNEL, "valueCoding": {"system": CHANNELS, "code": "pharmacie"}}]
    return res


async def open_worker(
    client: httpx.AsyncClient, base: str, deadline: float, seed: int, result: crud.PhaseResult, ids: list[str]
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        body = json.dumps(_dmp(rng), ensure_ascii=False).encode()
        request = client.build_request("POST", f"{base}/Patient", content=body, headers=_HEADERS)
        response = await crud._timed(client, result, request)
        if response is not None:
            ids.append(response.json()["id"])


async def write_worker(
    client: httpx.AsyncClient, base: str, deadline: float, seed: int, result: crud.PhaseResult, ids: list[str]
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        allergy = {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{rng.choice(ids)}"},
            "code": {"text": "Pénicilline"},
        }
        body = json.dumps(allergy, ensure_ascii=False).encode()
        request = client.build_request("POST", f"{base}/AllergyIntolerance", content=body, headers=_HEADERS)
        await crud._timed(client, result, request)


async def statistics_calls(server: crud.Server, calls: int) -> dict[str, Any]:
    """Latency of ``$dmp-statistics``, one call at a time."""
    times: list[float] = []
    errors = 0
    async with httpx.AsyncClient(timeout=120, headers=server.headers) as client:
        for _ in range(calls):
            started = time.perf_counter()
            r = await client.get(f"{server.url}/fhir/$dmp-statistics")
            times.append(time.perf_counter() - started)
            errors += r.status_code != 200
        opened = next(
            (p["valueInteger"] for p in r.json().get("parameter", []) if p["name"] == "opened"), None
        )
    times.sort()
    return {
        "phase": "dmp-statistics",
        "calls": calls,
        "errors": errors,
        "dmps_counted": opened,
        "p50_ms": round(crud.percentile(times, 50) * 1000, 1),
        "max_ms": round(times[-1] * 1000, 1),
    }


async def bench(args: argparse.Namespace) -> int:
    server = crud.Server(url=args.url.rstrip("/"), pid=None) if args.url else crud.start_server(None)
    print(f"machine   {json.dumps(crud.machine(), ensure_ascii=False)}")
    phases: list[dict[str, Any]] = []
    dbs: list[int] = []
    stop: dict[str, Any] = {}
    try:
        await crud._wait_healthy(server.url, server.process)
        crud.authorize(server)
        if server.pid is not None:
            dbs = [p.pid for p in crud.db_processes(server.pid)]
        plain: list[str] = []
        opened: list[str] = []
        for name, worker, ids in [
            ("patient-plain", crud.create_worker, plain),
            ("dmp-open", open_worker, opened),
            ("dmp-write", write_worker, opened),
        ]:
            phases.append(await crud.run_phase(name, worker, server, args.clients, args.seconds, ids))
            crud.print_phase(phases[-1])
        stats = await statistics_calls(server, args.stat_calls)
        print(
            f"\n== $dmp-statistics over {stats['dmps_counted']} DMPs: p50 {stats['p50_ms']} ms, max {stats['max_ms']} ms"
        )
        phases.append(stats)
    finally:
        if server.process is not None:
            stop = crud.stop_server(server, dbs)
            print(crud.describe_stop(stop))
    if server.temp_dir and server.data_dir is not None:
        shutil.rmtree(server.data_dir, ignore_errors=True)
    errors = sum(p["errors"] for p in phases)
    print(json.dumps({"machine": crud.machine(), "clients": args.clients, "phases": phases, "stop": stop}))
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="server root of a running server (default: start one here)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase (default 10)")
    parser.add_argument("--stat-calls", type=int, default=5, help="$dmp-statistics calls (default 5)")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.stat_calls < 1:
        parser.error("--clients and --stat-calls must be at least 1 and --seconds positive")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
