"""Policy benchmark: what the DMP access rules cost a search, with their traces.

Loads the search benchmark's synthetic data (``bench/search.py``) into a ``fhir-server serve`` it starts,
adds a *médecin* (TRE_G15 ``10``) whom every patient has authorized (one ``permit`` Consent per patient,
docs/access-rules.md), then runs each of the search benchmark's query families alternately with

- a ``system/*.read`` backend token (scopes only, no DMP policy), and
- the médecin's own token (``user/*.rs``, issued by ``fhir-server token --user``): the policy of every
  request is built (its consents, the patients they attend) and compiled into the storage filter,

both with their AuditEvent written before the answer, as every request has. Each response is checked
exact against the loaded data: a médecin authorized by every patient sees what the system token sees,
so any difference is an error. Rounds alternate the two tokens so that drift of the machine hits both::

    python bench/policy.py                          # 2,500 patients, over 100,000 resources
    python bench/policy.py --patients 100 --rounds 1 --seconds 5   # a quick run

Prints the figures per phase, the cost of the policy per family (throughput and server CPU per search),
then one JSON line with everything (the last line of output). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

import crud  # noqa: E402
import search  # noqa: E402

from fhir_server.dmp import systems  # noqa: E402
from fhir_server.fhir.rest import ResourceService  # noqa: E402
from fhir_server.storage.repository import Repository  # noqa: E402

Json = dict[str, Any]

_USER = "bench-medecin"
# The password only exists for `users add`; the benchmark's token comes from `fhir-server token --user`.
_PASSWORD = "bench-medecin-password"
_CONSENT_BATCH = 500


def consent(patient_id: str, practitioner_id: str) -> Json:
    """The patient's authorization of the professional (docs/access-rules.md)."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": systems.CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": systems.LOINC, "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "policyRule": {"coding": [{"system": systems.ACT_CODE, "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "actor": [
                {
                    "role": {"coding": [{"system": systems.PARTICIPATION_TYPE, "code": "PRCP"}]},
                    "reference": {"reference": f"Practitioner/{practitioner_id}"},
                }
            ],
        },
    }


def medecin() -> Json:
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": systems.RPPS, "value": "10109999999"}],
        "name": [{"family": "Bénichou", "given": ["Claire"]}],
        "qualification": [{"code": {"coding": [{"system": systems.PROFESSION, "code": "10"}]}}],
    }


def _cli(server: crud.Server, *args: str, stdin: str | None = None) -> str:
    """Run ``fhir-server`` against the benchmark server's database; its standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    env["FHIR_BASE_URL"] = f"{server.url}/fhir"
    cmd = [crud._fhir_server_command(), *args]
    if server.data_dir is not None:
        cmd += ["--data-dir", str(server.data_dir)]
    out = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, timeout=180, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"fhir-server {' '.join(args[:2])} failed: {out.stderr.strip()}")
    return out.stdout.strip()


async def add_professional(server: crud.Server, loaded: search.Loaded) -> dict[str, str]:
    """Store the médecin and one permit per patient; return the headers of the médecin's token."""
    service = ResourceService(Repository(loaded.mongo), loaded.engine)
    [doctor] = await service.create_many([medecin()])
    patients = list(loaded.facts.patients)
    for i in range(0, len(patients), _CONSENT_BATCH):
        await service.create_many([consent(pid, doctor.id) for pid in patients[i : i + _CONSENT_BATCH]])
    print(f"médecin   Practitioner/{doctor.id}, authorized by {len(patients):,} patients", flush=True)
    _cli(
        server,
        "users",
        "add",
        _USER,
        "--password-stdin",
        "--role",
        "practitioner",
        "--practitioner",
        doctor.id,
        stdin=_PASSWORD + "\n",
    )
    token = _cli(server, "token", "--scope", "user/*.rs", "--user", _USER)
    return {"Authorization": f"Bearer {token}"}


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def compare(phases: list[Json]) -> list[Json]:
    """Per family: both tokens over all rounds, and what the policy costs."""
    out = []
    for family in search.FAMILIES:
        mine = {
            mode: [p for p in phases if p["family"] == family.key and p["token"] == mode] for mode in TOKENS
        }

        def total(rows: list[Json], key: str) -> float:
            return float(sum(r[key] for r in rows))

        rps = {m: total(rows, "requests") / total(rows, "seconds") for m, rows in mine.items() if rows}
        cpu = {m: _mean([r["server_cpu_ms_per_req"] for r in rows]) for m, rows in mine.items()}
        if len(rps) < len(TOKENS):
            continue
        row = {
            "family": family.key,
            "system_rps": round(rps["system"], 1),
            "policy_rps": round(rps["policy"], 1),
            "throughput_cost_pct": round((1 - rps["policy"] / rps["system"]) * 100, 1),
            "system_server_cpu_ms": cpu["system"],
            "policy_server_cpu_ms": cpu["policy"],
            "system_p50_ms": _mean([r["p50_ms"] for r in mine["system"]]),
            "policy_p50_ms": _mean([r["p50_ms"] for r in mine["policy"]]),
            "system_p95_ms": _mean([r["p95_ms"] for r in mine["system"]]),
            "policy_p95_ms": _mean([r["p95_ms"] for r in mine["policy"]]),
        }
        if cpu["system"] and cpu["policy"]:
            row["server_cpu_cost_pct"] = round((cpu["policy"] / cpu["system"] - 1) * 100, 1)
        out.append(row)
    return out


TOKENS = ("system", "policy")


async def bench(args: argparse.Namespace) -> int:
    # The search benchmark waits for other test runs before each phase; here there are many phases.
    search._QUIET_WAIT_S = args.quiet_wait
    server = crud.start_server(args.keep)
    today = date.today()
    print(f"machine   {json.dumps(crud.machine(), ensure_ascii=False)}")
    phases: list[Json] = []
    failure: str | None = None
    loaded: search.Loaded | None = None
    dbs: list[int] = []
    stop: Json = {}
    audits: Json = {}
    try:
        await crud._wait_healthy(server.url, server.process)
        crud.authorize(server)
        dbs = [p.pid for p in crud.db_processes(server.pid)] if server.pid is not None else []
        loaded = await search.load(server, args.patients, args.seed, today)
        headers = {"policy": await add_professional(server, loaded)}
        crud.authorize(server, "system/*.read")
        headers["system"] = server.headers
        for round_no in range(1, args.rounds + 1):
            for family in search.FAMILIES:
                # Alternate which token goes first, so neither always meets a warmer cache.
                order = TOKENS if round_no % 2 else tuple(reversed(TOKENS))
                for mode in order:
                    print(f"\nround {round_no}, {family.key}, {mode} token", flush=True)
                    server.headers = headers[mode]
                    before = await loaded.mongo.db["AuditEvent"].estimated_document_count()
                    r = await search.run_family(
                        family, server, loaded.facts, today, args.clients, args.seconds
                    )
                    written = await loaded.mongo.db["AuditEvent"].estimated_document_count() - before
                    r.update(family=family.key, token=mode, round=round_no, audit_events=written)
                    print(f"  traces      {written} AuditEvents written during the phase")
                    phases.append(r)
        audits = {"total": await loaded.mongo.db["AuditEvent"].estimated_document_count()}
    except Exception as exc:  # reported with the figures so far; the server is stopped below in any case
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        if loaded is not None:
            await loaded.mongo.close()
        stop = crud.stop_server(server, dbs)
        print("\n" + crud.describe_stop(stop))
    costs = compare(phases)
    errors = sum(p["errors"] for p in phases)
    if failure:
        print(f"\nFAILURE: {failure}")
    print("\npolicy cost per family (both tokens over all rounds):")
    for c in costs:
        print(
            f"  {c['family']:<10} system {c['system_rps']:>7} req/s  policy {c['policy_rps']:>7} req/s  "
            f"throughput cost {c['throughput_cost_pct']:>5} %   server cpu {crud._fmt(c['system_server_cpu_ms'])}"
            f" -> {crud._fmt(c['policy_server_cpu_ms'])} ms/search  p95 {c['system_p95_ms']} -> {c['policy_p95_ms']} ms"
        )
    print(f"errors: {errors} (wrong results count as errors)")
    if server.temp_dir and server.data_dir is not None:
        shutil.rmtree(server.data_dir, ignore_errors=True)
    summary = {
        "machine": crud.machine(),
        "patients": args.patients,
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "load": loaded.figures if loaded else None,
        "costs": costs,
        "phases": phases,
        "audit_events": audits,
        "stop": stop,
        "failure": failure,
    }
    print(json.dumps(summary, ensure_ascii=False, default=str))
    return 1 if failure or errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2500, help="synthetic patients (default 2500)")
    parser.add_argument("--seed", type=int, default=1, help="data set seed (default 1)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every family × token (default 2)")
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0, help="most seconds to wait for other test runs to end (60)"
    )
    parser.add_argument("--keep", metavar="DIR", help="data directory to use and keep (must be empty or new)")
    args = parser.parse_args()
    if args.patients < 1 or args.clients < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--patients, --clients and --rounds must be at least 1, --seconds positive")
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        parser.error(f"--keep {args.keep}: the directory is not empty")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
