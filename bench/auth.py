"""Auth benchmark: what the access-token check costs a read, and how fast the token endpoint issues tokens.

Starts two servers on one throw-away data directory, the second reusing the embedded database the first
one started: one as deployed (every request must carry a bearer token, which it checks) and one with
``serve --insecure-no-auth``. It creates one Patient, then alternates read phases of the same
``GET Patient/{id}``: with a token against the first server, without one against the second, for
``--rounds`` rounds (the test VM stalls at random: alternating spreads the stalls over both modes). Per
mode: reads/s, p50/p95 and the server's CPU per read (the steadiest figure of the three), then what the
token check costs on each, against the target of less than 10 %.

Then it registers SMART Backend Services clients with ``fhir-server clients add --jwks`` (an ES384 key,
and an RS384 one) and runs concurrent ``client_credentials`` token requests authenticated by a signed
assertion (``private_key_jwt``): tokens/s, p50/p95, server CPU per token. Every answer must be a 200 with
an ``access_token``; anything else counts as an error. Assertions are signed before each token phase
(the client's signing would otherwise take CPU from the server on a small machine); any signed during
the phase, once those run out, are counted.

::

    python bench/auth.py [--seconds N] [--clients N] [--rounds N]

Prints the machine and settings, figures per phase, a summary, then one JSON line with everything (the
last line of output). The exit code is 1 when any request failed or a server logged an error. Figures
are only worth comparing when taken on a quiet machine. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

import crud  # noqa: E402

Json = dict[str, Any]
Worker = Callable[..., Awaitable[None]]

_TARGET_PCT = 10.0
_WARMUP_READS = 20
_WARMUP_TOKENS = 5
_PRESIGN_MIN = 50
_PRESIGN_MAX = 5000
_READ_SCOPE = "system/Patient.rs"
_CLIENT_SCOPE = "system/*.rs"
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART allows an assertion at most five minutes of life; a pre-signed one is used within this many
# seconds of its signature, or thrown away.
_ASSERTION_LIFETIME_S = 280
_ASSERTION_MAX_AGE_S = 200
_JSON = {"Accept": "application/fhir+json"}


# --- the two servers ------------------------------------------------------------------------------------


def _cli(server: crud.Server, *words: str) -> str:
    """Run ``fhir-server <words> --data-dir <the server's>`` as an operator would, beside the server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    cmd = [crud._fhir_server_command(), *words, "--data-dir", str(server.data_dir)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"fhir-server {' '.join(words)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


async def _get(server: crud.Server, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=crud._REQUEST_TIMEOUT_S) as client:
        return await client.get(f"{server.url}/fhir/{path}", headers={**_JSON, **(headers or {})})


async def create_patient(secured: crud.Server, open_: crud.Server) -> str:
    """One Patient, created with the token; then check that each server is in the mode it claims."""
    rng = random.Random(1)
    async with httpx.AsyncClient(timeout=crud._REQUEST_TIMEOUT_S, headers=secured.headers) as client:
        response = await client.post(
            f"{secured.url}/fhir/Patient",
            content=json.dumps(crud.patient(rng), ensure_ascii=False).encode(),
            headers={**_JSON, "Content-Type": "application/fhir+json"},
        )
    rid = crud._created_id(response) if response.status_code == 201 else None
    if rid is None:
        raise RuntimeError(f"creating the Patient answered {response.status_code}: {response.text[:300]}")
    checks = [
        (secured, secured.headers, 200, "the secured server with the token"),
        (secured, {}, 401, "the secured server without a token"),
        (open_, {}, 200, "the --insecure-no-auth server without a token"),
    ]
    for server, headers, expected, what in checks:
        got = await _get(server, f"Patient/{rid}", headers)
        if got.status_code != expected:
            raise RuntimeError(f"{what} answered {got.status_code}, not {expected}: {got.text[:300]}")
    return rid


async def warm_up(server: crud.Server, rid: str) -> None:
    async with httpx.AsyncClient(timeout=crud._REQUEST_TIMEOUT_S, headers=server.headers) as client:
        for _ in range(_WARMUP_READS):
            response = await client.get(f"{server.url}/fhir/Patient/{rid}", headers=_JSON)
            if response.status_code != 200:
                raise RuntimeError(f"warm-up read answered {response.status_code}: {response.text[:300]}")


# --- phases ---------------------------------------------------------------------------------------------


def capturing(worker: Worker, sink: list[crud.PhaseResult]) -> Worker:
    """``worker`` as :func:`crud.run_phase` calls it, keeping the phase's result (its raw latencies)."""

    async def run(
        client: httpx.AsyncClient, base: str, deadline: float, seed: int, result: crud.PhaseResult, ids: Any
    ) -> None:
        if not any(r is result for r in sink):
            sink.append(result)
        await worker(client, base, deadline, seed, result, ids)

    return run


async def phase(
    name: str, worker: Worker, server: crud.Server, db_pid: int | None, args: argparse.Namespace, ids: Any
) -> tuple[Json, list[float]]:
    """A :func:`crud.run_phase`, its raw latencies, and the shared database's CPU for a server that did
    not start it (the ``--insecure-no-auth`` one)."""
    sink: list[crud.PhaseResult] = []
    dbs = crud.db_processes(db_pid) if db_pid is not None else []
    before = crud.sample_cpu(None, dbs)
    r = await crud.run_phase(name, capturing(worker, sink), server, args.clients, args.seconds, ids)
    after = crud.sample_cpu(None, dbs)
    if r["db_cpu_ms_per_req"] is None and before.db is not None and after.db is not None and r["requests"]:
        r["db_cpu_ms_per_req"] = round((after.db - before.db) / r["requests"] * 1000, 3)
        r["db_cpu_cores"] = round((after.db - before.db) / r["seconds"], 2)
    crud.print_phase(r)
    return r, sink[0].latencies if sink else []


def _weighted(phases: list[Json], key: str) -> float | None:
    values = [(p[key], p["requests"]) for p in phases if p[key] is not None and p["requests"]]
    total = sum(n for _, n in values)
    return round(sum(v * n for v, n in values) / total, 3) if total else None


def aggregate(mode: str, phases: list[Json], latencies: list[float]) -> Json:
    """All the rounds of one mode as one phase: requests over time, percentiles over all latencies."""
    requests = sum(p["requests"] for p in phases)
    seconds = sum(p["seconds"] for p in phases)
    lat = sorted(latencies)
    return {
        "mode": mode,
        "phases": len(phases),
        "requests": requests,
        "errors": sum(p["errors"] for p in phases),
        "seconds": round(seconds, 2),
        "throughput_rps": round(requests / seconds, 1) if seconds else 0.0,
        "p50_ms": round(crud.percentile(lat, 50) * 1000, 2),
        "p95_ms": round(crud.percentile(lat, 95) * 1000, 2),
        "p99_ms": round(crud.percentile(lat, 99) * 1000, 2),
        "server_cpu_ms_per_req": _weighted(phases, "server_cpu_ms_per_req"),
        "db_cpu_ms_per_req": _weighted(phases, "db_cpu_ms_per_req"),
        "bench_cpu_ms_per_req": _weighted(phases, "bench_cpu_ms_per_req"),
        "client_stalls": sum(p["client_stalls"] for p in phases),
        "client_stall_total_s": round(sum(p["client_stall_total_s"] for p in phases), 2),
    }


def _pct(value: float | None, reference: float | None) -> float | None:
    """How much more ``value`` is than ``reference``, in per cent of ``reference``."""
    if value is None or reference is None or reference == 0:
        return None
    return round((value - reference) / reference * 100, 1)


def token_cost(token: Json, open_: Json, pairs: list[tuple[Json, Json]]) -> Json:
    """Relative cost of the token check: over all rounds, and the median of the rounds taken one by one
    (a round's two phases ran back to back, so they share the machine's mood)."""

    def costs(t: Json, o: Json) -> dict[str, float | None]:
        return {
            # Fewer reads a second with a token, in per cent of the reads without.
            "throughput_loss_pct": _loss(t["throughput_rps"], o["throughput_rps"]),
            "p95_increase_pct": _pct(t["p95_ms"], o["p95_ms"]),
            "server_cpu_increase_pct": _pct(t["server_cpu_ms_per_req"], o["server_cpu_ms_per_req"]),
        }

    overall = costs(token, open_)
    rounds = [costs(t, o) for t, o in pairs]
    median = {}
    for key in overall:
        values = [r[key] for r in rounds if r[key] is not None]
        median[key] = round(statistics.median(values), 1) if values else None
    verdict = {
        key: None if value is None else ("within" if value < _TARGET_PCT else "over")
        for key, value in overall.items()
    }
    return {"overall": overall, "median_of_rounds": median, "per_round": rounds, "vs_10pct": verdict}


def _loss(value: float, reference: float) -> float | None:
    """How much less ``value`` is than ``reference``, in per cent of ``reference``."""
    pct = _pct(value, reference)
    return None if pct is None else 0.0 - pct


async def read_rounds(
    secured: crud.Server, open_: crud.Server, rid: str, args: argparse.Namespace, phases: list[Json]
) -> Json:
    latencies: dict[str, list[float]] = {"token": [], "no-token": []}
    by_mode: dict[str, list[Json]] = {"token": [], "no-token": []}
    for i in range(1, args.rounds + 1):
        for mode, server in (("token", secured), ("no-token", open_)):
            r, lat = await phase(f"read {mode} #{i}", crud.read_worker, server, secured.pid, args, [rid])
            phases.append(r)
            by_mode[mode].append(r)
            latencies[mode] += lat
            for s in (secured, open_):
                if s.process is not None and s.process.poll() is not None:
                    raise RuntimeError(f"the server at {s.url} exited with code {s.process.returncode}")
    token = aggregate("token", by_mode["token"], latencies["token"])
    open_agg = aggregate("no-token", by_mode["no-token"], latencies["no-token"])
    cost = token_cost(token, open_agg, list(zip(by_mode["token"], by_mode["no-token"], strict=True)))
    return {"token": token, "no_token": open_agg, "cost": cost}


# --- the token endpoint ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Backend:
    """A registered Backend Services client and the assertions it authenticates with."""

    client_id: str
    alg: str
    key: ECKey | RSAKey
    token_url: str
    pool: collections.deque[tuple[float, str]] = dataclasses.field(default_factory=collections.deque)
    signed_during_phase: int = 0
    last_token: str | None = None

    def sign(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME_S,
            "jti": secrets.token_urlsafe(18),
        }
        header = {"alg": self.alg, "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])

    def presign(self, count: int) -> float:
        """Sign ``count`` assertions ahead; returns the seconds it took."""
        started = time.monotonic()
        self.pool.clear()
        self.pool.extend((time.monotonic(), self.sign()) for _ in range(count))
        return time.monotonic() - started

    def next(self) -> str:
        while self.pool:
            signed_at, assertion = self.pool.popleft()
            if time.monotonic() - signed_at < _ASSERTION_MAX_AGE_S:
                return assertion
        self.signed_during_phase += 1
        return self.sign()

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "scope": _READ_SCOPE,
            "client_assertion_type": _ASSERTION_TYPE,
            "client_assertion": self.next(),
        }


def register(server: crud.Server, alg: str) -> Backend:
    """Register a client with a new key pair through the CLI (public JWK Set file, as an operator would)."""
    kid = f"bench-{alg.lower()}-{secrets.token_hex(4)}"
    key: ECKey | RSAKey
    if alg == "ES384":
        key = ECKey.generate_key("P-384", parameters={"kid": kid, "alg": alg}, private=True)
    else:
        key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": alg}, private=True)
    if server.data_dir is None:
        raise RuntimeError("the server has no data directory to register a client in")
    path = server.data_dir / f"{kid}.jwks.json"
    path.write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    client_id = f"bench-backend-{alg.lower()}"
    _cli(server, "clients", "add", client_id, "--jwks", str(path), "--scope", _CLIENT_SCOPE)
    return Backend(client_id, alg, key, f"{server.url}/fhir/auth/token")


def _check_token(response: httpx.Response, result: crud.PhaseResult) -> str | None:
    try:
        body = response.json()
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(token, str) or not token:
        result.record_error(f"{response.status_code} without access_token", response.text)
        return None
    return token


def token_worker(backend: Backend) -> Worker:
    async def run(
        client: httpx.AsyncClient, base: str, deadline: float, seed: int, result: crud.PhaseResult, _: Any
    ) -> None:
        headers = {"Accept": "application/json"}
        while time.monotonic() < deadline:
            request = client.build_request("POST", backend.token_url, data=backend.form(), headers=headers)
            response = await crud._timed(client, result, request)
            if response is not None:
                backend.last_token = _check_token(response, result) or backend.last_token

    return run


async def token_phase(
    backend: Backend, secured: crud.Server, rid: str, args: argparse.Namespace, phases: list[Json]
) -> Json:
    # Warm up (first use of the client, its keys, the grant), with assertions signed on the spot.
    took: list[float] = []
    async with httpx.AsyncClient(timeout=crud._REQUEST_TIMEOUT_S) as client:
        for _ in range(_WARMUP_TOKENS):
            form = backend.form()
            started = time.perf_counter()
            response = await client.post(backend.token_url, data=form)
            took.append(time.perf_counter() - started)
            if _check_token(response, crud.PhaseResult("warm-up")) is None:
                raise RuntimeError(
                    f"{backend.alg} token request answered {response.status_code}: {response.text[:300]}"
                )
    count = args.presign
    if count is None:
        # Enough for every client answered as fast as the warm-up's median, half as many again.
        per_token = statistics.median(took[1:])
        count = min(_PRESIGN_MAX, max(_PRESIGN_MIN, int(1.5 * args.clients * args.seconds / per_token)))
    backend.signed_during_phase = 0
    signing_s = backend.presign(count)
    print(f"\npre-signed {count} {backend.alg} assertions in {signing_s:.1f} s")
    # The token endpoint needs no bearer token: the client authenticates with its assertion.
    bare = dataclasses.replace(secured, headers={})
    r, _ = await phase(f"token {backend.alg}", token_worker(backend), bare, None, args, None)
    r["client_id"] = backend.client_id
    r["presigned_assertions"] = count
    r["presign_seconds"] = round(signing_s, 2)
    r["assertions_signed_during_phase"] = backend.signed_during_phase
    print(f"  assertions signed during the phase (pre-signed ones ran out): {backend.signed_during_phase}")
    # An issued token must open what its scope says.
    if backend.last_token is not None:
        got = await _get(secured, f"Patient/{rid}", {"Authorization": f"Bearer {backend.last_token}"})
        r["issued_token_reads_patient"] = got.status_code
        if got.status_code != 200:
            r["errors"] += 1
            r["error_samples"].append(f"read with an issued token: {got.status_code} {got.text[:300]}")
    phases.append(r)
    return r


# --- output ---------------------------------------------------------------------------------------------


def print_reads(reads: Json) -> None:
    print("\n== reads: all rounds")
    for agg in (reads["token"], reads["no_token"]):
        print(
            f"  {agg['mode']:9} {agg['throughput_rps']:>8} reads/s   p50 {agg['p50_ms']} ms   "
            f"p95 {agg['p95_ms']} ms   server cpu {crud._fmt(agg['server_cpu_ms_per_req'], ' ms')}/read   "
            f"db cpu {crud._fmt(agg['db_cpu_ms_per_req'], ' ms')}/read   "
            f"({agg['requests']} reads, {agg['errors']} errors, {agg['client_stalls']} client stalls)"
        )
    cost = reads["cost"]
    labels = {
        "throughput_loss_pct": "reads/s lost",
        "p95_increase_pct": "p95 added",
        "server_cpu_increase_pct": "server CPU/read added",
    }
    print(f"  token check cost (target < {_TARGET_PCT:.0f} %):")
    for key, label in labels.items():
        overall, median = cost["overall"][key], cost["median_of_rounds"][key]
        verdict = cost["vs_10pct"][key]
        print(
            f"    {label:22} {crud._fmt(overall, ' %'):>9} over all rounds   "
            f"(median of rounds {crud._fmt(median, ' %')})   -> {verdict or 'n/a'}"
        )
    print("  server CPU/read is the steadiest of the three; latency and reads/s move with the VM's stalls.")


def print_tokens(results: list[Json]) -> None:
    print("\n== token endpoint (client_credentials, private_key_jwt)")
    for r in results:
        print(
            f"  {r['phase']:10} {r['throughput_rps']:>8} tokens/s   p50 {r['p50_ms']} ms   "
            f"p95 {r['p95_ms']} ms   server cpu {crud._fmt(r['server_cpu_ms_per_req'], ' ms')}/token   "
            f"db cpu {crud._fmt(r['db_cpu_ms_per_req'], ' ms')}/token   ({r['requests']} tokens, "
            f"{r['errors']} errors)"
        )


# --- main -----------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> int:
    secured = crud.start_server(None)
    open_: crud.Server | None = None
    settings: Json = {
        "secured_url": secured.url,
        "secured_pid": secured.pid,
        "data_dir": str(secured.data_dir),
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "presigned_assertions_per_token_phase": "auto" if args.presign is None else args.presign,
        "token_algorithms": args.algorithms,
        "connections": f"one shared httpx pool per phase, {args.clients} keep-alive HTTP/1.1 connections",
        "server_env": "FHIR_ACCESS_LOG=false, other FHIR_* unset (embedded database, shared by both)",
    }
    print(f"machine   {json.dumps(crud.machine(), ensure_ascii=False)}")

    phases: list[Json] = []
    reads: Json | None = None
    tokens: list[Json] = []
    failure: str | None = None
    stops: dict[str, Json] = {}
    db_pids: list[int] = []
    try:
        await crud._wait_healthy(secured.url, secured.process)
        # Only now: the second server must find the database the first one started, not start its own.
        open_ = crud.start_server(str(secured.data_dir), ["--insecure-no-auth"])
        settings.update(open_url=open_.url, open_pid=open_.pid)
        print(f"settings  {json.dumps(settings, ensure_ascii=False)}")
        await crud._wait_healthy(open_.url, open_.process)
        if secured.pid is not None:
            db_pids = [p.pid for p in crud.db_processes(secured.pid)]
        crud.authorize(secured)
        rid = await create_patient(secured, open_)
        await warm_up(secured, rid)
        await warm_up(open_, rid)
        reads = await read_rounds(secured, open_, rid, args, phases)
        print_reads(reads)
        for alg in args.algorithms:
            tokens.append(await token_phase(register(secured, alg), secured, rid, args, phases))
        print_tokens(tokens)
    except (RuntimeError, httpx.HTTPError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        # The open server first: the secured one owns the database and stops it.
        for name, server, pids in (("open", open_, []), ("secured", secured, db_pids)):
            if server is not None and server.process is not None:
                stops[name] = crud.stop_server(server, pids)
                print(crud.describe_stop(stops[name], f"{name} server"))

    errors = sum(p["errors"] for p in phases)
    servers = {"secured": secured, "open": open_}
    logs = {
        name: {"lines": s.log.lines, "problem_lines": s.log.problems}
        for name, s in servers.items()
        if s is not None and s.log is not None
    }
    log_problems = sum(v["problem_lines"] for v in logs.values())
    abnormal_stop = any(
        s["killed"] or s["orphan_db_pids"] or s["exit_code"] not in (0, None) for s in stops.values()
    )
    unhealthy = failure is not None or errors > 0 or log_problems > 0 or abnormal_stop
    if failure:
        print(f"\nFAILURE: {failure}")
    for name, s in servers.items():
        if s is not None and s.log is not None:
            print(
                f"{name} server output: {s.log.lines} lines, {s.log.problems} with ERROR/Traceback/Exception"
            )
            if unhealthy:
                crud._print_tail(f"{name} server output", list(s.log.tail))
    if unhealthy:
        crud._print_tail("embedded database log", crud.db_tail(secured))
    if secured.temp_dir and secured.data_dir is not None:
        shutil.rmtree(secured.data_dir, ignore_errors=True)
    summary = {
        "machine": crud.machine(),
        "settings": settings,
        "reads": reads,
        "tokens": tokens,
        "phases": phases,
        "stops": stops,
        "server_logs": logs,
        "failure": failure,
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 1 if unhealthy else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="token / no-token read rounds (default 3)")
    parser.add_argument(
        "--presign",
        type=int,
        default=None,
        help=f"assertions signed before each token phase (default: from the warm-up's pace, "
        f"{_PRESIGN_MIN} to {_PRESIGN_MAX})",
    )
    parser.add_argument(
        "--algorithms",
        nargs="+",
        choices=["ES384", "RS384"],
        default=["ES384", "RS384"],
        help="client key algorithms, one token phase each (default both)",
    )
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--clients and --rounds must be at least 1 and --seconds positive")
    if args.presign is not None and args.presign < 0:
        parser.error("--presign cannot be negative")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
