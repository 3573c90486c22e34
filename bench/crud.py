"""CRUD benchmark: concurrent Patient creates, then concurrent reads of the created ids.

Run against a server you started (``--url http://127.0.0.1:8080 --pid <server pid>``), or let the script
start one on a free port with a throw-away embedded database::

    python bench/crud.py --clients 8 --seconds 10

Prints human-readable figures per phase, then one JSON line with everything (the last line of output).
Only 127.0.0.1 is ever contacted by the script and the server it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

_TAIL_LINES = 50
_HEALTH_TIMEOUT_S = 90.0
# The server gives uvicorn 10 s and the embedded database up to 60 s to stop after SIGINT.
_STOP_TIMEOUT_S = 90.0
_REQUEST_TIMEOUT_S = 30.0
_ERROR_SAMPLES = 5
# A 10 ms sleep waking up later than this means the client process was not running.
_STALL_S = 0.1

_FAMILIES = ["Lefèvre", "Gérard", "Dubois-Pérez", "Lemaître", "Bénard", "Noël", "Çelik", "Hérault", "Mercier"]
_GIVEN = {
    "female": ["Hélène", "Zoé", "Chloé", "Anaïs", "Maëlle", "Noémie", "Éloïse", "Bérénice"],
    "male": ["François", "Jérôme", "Loïc", "Raphaël", "Clément", "Gaël", "Anthoine", "Théo"],
}


# --- the server under test ------------------------------------------------------------------------------


class ServerLog:
    """Drains the server's output (a full pipe would stall it) and keeps the last lines."""

    def __init__(self, stream: Any) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.lines = 0
        self.problems = 0
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            self.lines += 1
            if any(word in line for word in ("ERROR", "CRITICAL", "Traceback", "Exception")):
                self.problems += 1
            self.tail.append(line)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass
class Server:
    url: str
    pid: int | None
    process: subprocess.Popen[bytes] | None = None
    log: ServerLog | None = None
    data_dir: Path | None = None
    temp_dir: bool = False
    # The bearer token every benchmark request carries (see authorize()).
    headers: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fhir_server_command() -> str:
    # Prefer the console script of the interpreter running this file, i.e. the same virtualenv.
    beside = Path(sys.executable).parent / "fhir-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("fhir-server")
    if not found:
        raise SystemExit("fhir-server not found: install the package (pip install -e .) or pass --url")
    return found


def authorize(server: Server, scope: str = "system/*.*") -> None:
    """Give the benchmark an access token of the server (``fhir-server token``), as a backend client
    would hold one: the figures include the token check on every request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    env["FHIR_BASE_URL"] = f"{server.url}/fhir"
    cmd = [_fhir_server_command(), "token", "--scope", scope]
    if server.data_dir is not None:
        cmd += ["--data-dir", str(server.data_dir)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"fhir-server token failed: {out.stderr.strip()}")
    server.headers = {"Authorization": f"Bearer {out.stdout.strip()}"}


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + _HEALTH_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode} before it was healthy")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}/health did not answer 200 within {_HEALTH_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.2)


def start_server(data_dir: str | None, extra_args: list[str] | None = None) -> Server:
    """Start ``fhir-server serve`` on a free local port with its embedded database (``extra_args`` are
    added to the ``serve`` command line, e.g. ``--insecure-no-auth``)."""
    temp = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="fhir-bench-")) if temp else Path(data_dir or "").resolve()
    port = _free_port()
    # Inherited FHIR_* settings could point the server at another database or address: the benchmark
    # controls them all, so that its figures always describe the same set-up.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    env["FHIR_ACCESS_LOG"] = "false"
    cmd = [
        _fhir_server_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(path),
        *(extra_args or []),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return Server(
        url=f"http://127.0.0.1:{port}",
        pid=proc.pid,
        process=proc,
        log=ServerLog(proc.stdout),
        data_dir=path,
        temp_dir=temp,
    )


def stop_server(server: Server, db_pids: list[int]) -> dict[str, Any]:
    """SIGINT (as Ctrl-C would), wait, and check that the embedded database went away with it."""
    proc = server.process
    if proc is None:
        return {}
    started = time.monotonic()
    killed = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            killed = True
            proc.kill()
            proc.wait()
    # The database runs in its own session, so it survives a killed server: never leave one behind.
    orphans = [pid for pid in db_pids if psutil.pid_exists(pid) and _is_running(pid)]
    for pid in orphans:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).terminate()
    if server.log is not None:
        server.log.join(5.0)
    return {
        "exit_code": proc.returncode,
        "stop_seconds": round(time.monotonic() - started, 2),
        "killed": killed,
        "orphan_db_pids": orphans,
    }


def describe_stop(stop: dict[str, Any], label: str = "server") -> str:
    """One line on how a :func:`stop_server` went."""
    return (
        f"{label} stop: exit code {stop['exit_code']} after {stop['stop_seconds']} s"
        + (" (killed)" if stop["killed"] else "")
        + (f"; orphaned database pids terminated: {stop['orphan_db_pids']}" if stop["orphan_db_pids"] else "")
    )


def _is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def db_tail(server: Server) -> list[str]:
    """Last lines of the embedded database's log file, written by the server's launcher."""
    if server.data_dir is None:
        return []
    path = server.data_dir / "secantusd.log"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return lines[-_TAIL_LINES:]


# --- CPU accounting -------------------------------------------------------------------------------------


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def db_processes(server_pid: int) -> list[psutil.Process]:
    """The embedded database: descendants of the server whose command line mentions secantusd."""
    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if "secantusd" in " ".join([child.name(), *child.cmdline()]):
                found.append(child)
    return found


@dataclass
class CpuSample:
    server: float | None
    db: float | None
    bench: float


def sample_cpu(server_pid: int | None, dbs: list[psutil.Process]) -> CpuSample:
    server = db = None
    if server_pid is not None:
        with contextlib.suppress(psutil.Error):
            server = _cpu(psutil.Process(server_pid))
    if dbs:
        with contextlib.suppress(psutil.Error):
            db = sum(_cpu(p) for p in dbs)
    return CpuSample(server, db, _cpu(psutil.Process()))


def rss_mb(pid: int | None, dbs: list[psutil.Process]) -> tuple[float | None, float | None]:
    server = db = None
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            server = psutil.Process(pid).memory_info().rss / 2**20
    if dbs:
        with contextlib.suppress(psutil.Error):
            db = sum(p.memory_info().rss for p in dbs) / 2**20
    return server, db


# --- load -----------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    error_samples: list[str] = field(default_factory=list)

    def record_error(self, what: str, detail: str) -> None:
        self.errors += 1
        self.statuses[what] += 1
        if len(self.error_samples) < _ERROR_SAMPLES:
            self.error_samples.append(f"{what}: {detail[:300]}")


def patient(rng: random.Random) -> dict[str, Any]:
    gender = rng.choice(["female", "male"])
    birth = f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return {
        "resourceType": "Patient",
        "name": [{"family": rng.choice(_FAMILIES), "given": [rng.choice(_GIVEN[gender])]}],
        "gender": gender,
        "birthDate": birth,
    }


def _created_id(response: httpx.Response) -> str | None:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            return body["id"]
    # Prefer: return=minimal or an empty body: the id is in Location (.../Patient/<id>/_history/<v>).
    parts = response.headers.get("location", "").split("/")
    if "Patient" in parts and parts.index("Patient") + 1 < len(parts):
        return parts[parts.index("Patient") + 1]
    return None


async def _timed(
    client: httpx.AsyncClient, result: PhaseResult, request: httpx.Request
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.send(request)
    except httpx.HTTPError as exc:
        result.latencies.append(time.perf_counter() - started)
        result.record_error(type(exc).__name__, str(exc) or repr(exc))
        return None
    result.latencies.append(time.perf_counter() - started)
    if not 200 <= response.status_code < 300:
        result.record_error(str(response.status_code), response.text)
        return None
    return response


async def create_worker(
    client: httpx.AsyncClient, base: str, deadline: float, seed: int, result: PhaseResult, ids: list[str]
) -> None:
    rng = random.Random(seed)
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    while time.monotonic() < deadline:
        body = json.dumps(patient(rng), ensure_ascii=False).encode()
        request = client.build_request("POST", f"{base}/Patient", content=body, headers=headers)
        response = await _timed(client, result, request)
        if response is not None:
            rid = _created_id(response)
            if rid:
                ids.append(rid)
            else:
                result.record_error("no-id", f"{response.status_code} {response.headers}")


async def read_worker(
    client: httpx.AsyncClient, base: str, deadline: float, seed: int, result: PhaseResult, ids: list[str]
) -> None:
    rng = random.Random(seed)
    headers = {"Accept": "application/fhir+json"}
    while time.monotonic() < deadline:
        request = client.build_request("GET", f"{base}/Patient/{rng.choice(ids)}", headers=headers)
        await _timed(client, result, request)


async def watch_loop(stop: asyncio.Event, lags: list[float]) -> None:
    """Record how late 10 ms sleeps wake up in this process.

    Latency figures are only as good as the client's clock: if this process (or the whole machine) is
    descheduled, every in-flight request looks slow. Late wake-ups measure exactly that.
    """
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - started - 0.01)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


async def run_phase(
    name: str,
    worker: Any,
    server: Server,
    clients: int,
    seconds: float,
    ids: list[str],
) -> dict[str, Any]:
    base = f"{server.url}/fhir"
    result = PhaseResult(name)
    # One pool shared by all workers, sized so that every worker keeps its own keep-alive connection.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    dbs = db_processes(server.pid) if server.pid is not None else []
    lags: list[float] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(
        limits=limits, timeout=_REQUEST_TIMEOUT_S, http2=False, headers=server.headers
    ) as client:
        watcher = asyncio.create_task(watch_loop(stop, lags))
        before = sample_cpu(server.pid, dbs)
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(
            *(worker(client, base, deadline, 1000 * (i + 1), result, ids) for i in range(clients))
        )
        # Requests in flight at the deadline finish after it: count the time they took.
        elapsed = time.monotonic() - started
        after = sample_cpu(server.pid, dbs)
        stop.set()
        await watcher
    stalls = [lag for lag in lags if lag > _STALL_S]
    done = len(result.latencies)
    lat = sorted(result.latencies)
    server_rss, db_rss = rss_mb(server.pid, dbs)

    def per_request_ms(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or done == 0:
            return None
        return round((b - a) / done * 1000, 3)

    def cores(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round((b - a) / elapsed, 2)

    return {
        "phase": name,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": done,
        "errors": result.errors,
        "error_kinds": dict(result.statuses),
        "error_samples": result.error_samples,
        "throughput_rps": round(done / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p95_ms": round(percentile(lat, 95) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "server_cpu_ms_per_req": per_request_ms(before.server, after.server),
        "db_cpu_ms_per_req": per_request_ms(before.db, after.db),
        "bench_cpu_ms_per_req": per_request_ms(before.bench, after.bench),
        "server_cpu_cores": cores(before.server, after.server),
        "db_cpu_cores": cores(before.db, after.db),
        "bench_cpu_cores": cores(before.bench, after.bench),
        "server_rss_mb": None if server_rss is None else round(server_rss, 1),
        "db_rss_mb": None if db_rss is None else round(db_rss, 1),
        "db_pids": [p.pid for p in dbs],
        "client_stalls": len(stalls),
        "client_stall_total_s": round(sum(stalls), 2),
        "client_stall_max_ms": round(max(lags, default=0.0) * 1000, 1),
    }


# --- output ---------------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value}{unit}"


def print_phase(r: dict[str, Any]) -> None:
    print(f"\n== {r['phase']}: {r['clients']} clients, {r['seconds']} s")
    print(f"  requests    {r['requests']}   errors {r['errors']}   throughput {r['throughput_rps']} req/s")
    print(
        f"  latency     p50 {r['p50_ms']} ms   p95 {r['p95_ms']} ms   p99 {r['p99_ms']} ms   max {r['max_ms']} ms"
    )
    print(
        f"  cpu/request server {_fmt(r['server_cpu_ms_per_req'], ' ms')}   "
        f"db {_fmt(r['db_cpu_ms_per_req'], ' ms')}   bench client {_fmt(r['bench_cpu_ms_per_req'], ' ms')}"
    )
    print(
        f"  cpu (cores) server {_fmt(r['server_cpu_cores'])}   db {_fmt(r['db_cpu_cores'])}   "
        f"bench client {_fmt(r['bench_cpu_cores'])}"
    )
    print(f"  rss         server {_fmt(r['server_rss_mb'], ' MiB')}   db {_fmt(r['db_rss_mb'], ' MiB')}")
    print(
        f"  client      {r['client_stalls']} stalls > {_STALL_S * 1000:.0f} ms, "
        f"{r['client_stall_total_s']} s in all, longest {r['client_stall_max_ms']} ms"
    )
    if r["errors"]:
        print(f"  error kinds {r['error_kinds']}")
        for sample in r["error_samples"]:
            print(f"    {sample}")


def machine() -> dict[str, Any]:
    return {
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "httpx": httpx.__version__,
    }


def _print_tail(title: str, lines: list[str]) -> None:
    print(f"\n-- {title} (last {len(lines)} lines) --")
    for line in lines:
        print(f"  | {line}")


# --- main -----------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> int:
    server = Server(url=args.url.rstrip("/"), pid=args.pid) if args.url else start_server(args.data_dir)
    settings = {
        "url": server.url,
        "server_pid": server.pid,
        "started_by_bench": server.process is not None,
        "data_dir": str(server.data_dir) if server.data_dir else None,
        "data_dir_temporary": server.temp_dir,
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "connections": f"one shared httpx pool, {args.clients} keep-alive HTTP/1.1 connections",
        "server_env": "FHIR_ACCESS_LOG=false, other FHIR_* unset (embedded database)"
        if server.process
        else "as started by the caller",
    }
    print(f"machine   {json.dumps(machine(), ensure_ascii=False)}")
    print(f"settings  {json.dumps(settings, ensure_ascii=False)}")

    phases: list[dict[str, Any]] = []
    failure: str | None = None
    stop: dict[str, Any] = {}
    dbs: list[int] = []
    try:
        await _wait_healthy(server.url, server.process)
        if args.token:
            server.headers = {"Authorization": f"Bearer {args.token}"}
        else:
            authorize(server)
        if server.pid is not None:
            dbs = [p.pid for p in db_processes(server.pid)]
        ids: list[str] = []
        phases.append(await run_phase("create", create_worker, server, args.clients, args.seconds, ids))
        print_phase(phases[-1])
        if server.process is not None and server.process.poll() is not None:
            failure = f"the server exited with code {server.process.returncode} during the create phase"
        elif not ids:
            failure = "no Patient was created: the read phase was skipped"
        else:
            phases.append(await run_phase("read", read_worker, server, args.clients, args.seconds, ids))
            print_phase(phases[-1])
            if server.process is not None and server.process.poll() is not None:
                failure = f"the server exited with code {server.process.returncode} during the read phase"
        print(f"\ncreated ids: {len(ids)} ({len(set(ids))} distinct)")
    except RuntimeError as exc:
        failure = str(exc)
    finally:
        if server.process is not None:
            stop = stop_server(server, dbs)
            print(describe_stop(stop))

    errors = sum(p["errors"] for p in phases)
    log_problems = server.log.problems if server.log else 0
    abnormal_stop = bool(stop) and (
        stop["killed"] or stop["orphan_db_pids"] or stop["exit_code"] not in (0, None)
    )
    unhealthy = failure is not None or errors > 0 or log_problems > 0 or abnormal_stop
    if failure:
        print(f"\nFAILURE: {failure}")
    if server.log is not None:
        print(f"server output: {server.log.lines} lines, {log_problems} with ERROR/Traceback/Exception")
        if unhealthy:
            _print_tail("server output", list(server.log.tail))
            _print_tail("embedded database log", db_tail(server))
    if server.temp_dir and server.data_dir is not None:
        shutil.rmtree(server.data_dir, ignore_errors=True)

    summary = {
        "machine": machine(),
        "settings": settings,
        "phases": phases,
        "stop": stop,
        "server_log_lines": server.log.lines if server.log else None,
        "server_log_problem_lines": log_problems if server.log else None,
        "failure": failure,
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 1 if unhealthy else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="server root of a running server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, for CPU figures")
    parser.add_argument(
        "--token", help="with --url: an access token to send (default: one from `fhir-server token`)"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase (default 10)")
    parser.add_argument("--data-dir", help="data directory of the server started here (default: a temp dir)")
    args = parser.parse_args()
    if args.url and args.data_dir:
        parser.error("--data-dir applies only to a server started by the benchmark (no --url)")
    if args.pid and not args.url:
        parser.error("--pid goes with --url")
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be at least 1 and --seconds positive")
    if args.url and httpx.URL(args.url).host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("--url must be a local address (127.0.0.1): the benchmark is meant for this machine")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
