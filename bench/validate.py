"""``$validate`` benchmark: latency per resource against a ``fhir-server serve`` subprocess.

For each DMP profile example (``profiles/examples``, the good one and the bad one) the script sends
``--requests`` sequential ``POST [type]/$validate`` (after a few untimed ones), and prints p50/p95 per
resource; then the same resource created claiming its profile (checked in full) and without the claim
(vocabulary check only), to show what profile enforcement adds to a write. Also the validator alone
in this process (no HTTP), per resource. The server is started on a free port with a throw-away
embedded database::

    python bench/validate.py --requests 200

Prints human-readable figures, then one JSON line with everything (the last line of output).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

import crud  # noqa: E402

from fhir_server.profiles.registry import default_profiles  # noqa: E402

Json = dict[str, Any]
_EXAMPLES = Path(__file__).resolve().parents[1] / "profiles" / "examples"
_WARMUP = 5


def _examples() -> list[tuple[str, Json]]:
    return [
        (p.stem, json.loads(p.read_text("utf-8")))
        for p in sorted(_EXAMPLES.glob("*.json"))
        if not p.name.startswith("Extension-")
    ]


def _figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(crud.percentile(ordered, 50) * 1000, 2),
        "p95_ms": round(crud.percentile(ordered, 95) * 1000, 2),
    }


async def _time(client: httpx.AsyncClient, requests: int, send: Any, expect: set[int]) -> dict[str, Any]:
    for _ in range(_WARMUP):
        await send()
    samples, errors = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        r = await send()
        samples.append(time.perf_counter() - started)
        errors += r.status_code not in expect
    return {**_figures(samples), "requests": requests, "errors": errors}


async def _validate_phase(server: crud.Server, requests: int) -> list[dict[str, Any]]:
    out = []
    async with httpx.AsyncClient(
        base_url=f"{server.url}/fhir/", headers=server.headers, timeout=30
    ) as client:
        for name, resource in _examples():
            rtype = resource["resourceType"]

            async def send(rtype: str = rtype, resource: Json = resource) -> httpx.Response:
                return await client.post(f"{rtype}/$validate", json=resource)

            issues = (await send()).json()["issue"]
            row = {"resource": name, "issues": len(issues), **await _time(client, requests, send, {200})}
            out.append(row)
            print(
                f"  $validate {name:<55} p50 {row['p50_ms']:>6} ms  p95 {row['p95_ms']:>6} ms  issues {row['issues']}"
            )
    return out


async def _write_phase(server: crud.Server, requests: int) -> list[dict[str, Any]]:
    out = []
    async with httpx.AsyncClient(
        base_url=f"{server.url}/fhir/", headers=server.headers, timeout=30
    ) as client:
        for name, resource in _examples():
            if not name.endswith("-good"):
                continue
            rtype = resource["resourceType"]
            claimed = {k: v for k, v in resource.items() if k != "id"}
            unclaimed = copy.deepcopy(claimed)
            unclaimed["meta"].pop("profile")
            if not unclaimed["meta"]:
                del unclaimed["meta"]
            for label, body in (("claimed", claimed), ("unclaimed", unclaimed)):

                async def send(rtype: str = rtype, body: Json = body) -> httpx.Response:
                    return await client.post(rtype, json=body, headers={"Prefer": "return=minimal"})

                row = {"resource": name, "write": label, **await _time(client, requests, send, {201})}
                out.append(row)
                print(f"  create {label:<9} {name:<50} p50 {row['p50_ms']:>6} ms  p95 {row['p95_ms']:>6} ms")
    return out


def _timed_calls(requests: int, call: Any) -> dict[str, float]:
    for _ in range(_WARMUP):
        call()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return _figures(samples)


def _in_process(requests: int) -> list[dict[str, Any]]:
    """The validator alone: the full profile, and the vocabulary check an unclaimed write gets."""
    profiles = default_profiles()
    out = []
    for name, resource in _examples():
        url = resource["meta"]["profile"][0]
        full = _timed_calls(requests, lambda r=resource, u=url: profiles.validate(r, u))
        vocabulary = _timed_calls(requests, lambda r=resource, u=url: profiles.validate(r, u, full=False))
        row = {"resource": name, "full": full, "vocabulary": vocabulary}
        out.append(row)
        print(
            f"  validator {name:<55} full p50 {full['p50_ms']:>6} p95 {full['p95_ms']:>6} ms   "
            f"vocabulary p50 {vocabulary['p50_ms']:>6} p95 {vocabulary['p95_ms']:>6} ms"
        )
    return out


async def bench(args: argparse.Namespace) -> int:
    print(f"machine   {json.dumps(crud.machine(), ensure_ascii=False)}")
    print(f"settings  {json.dumps({'requests': args.requests, 'sequential': True}, ensure_ascii=False)}")
    print("\nvalidator in this process (full profile; vocabulary check of an unclaimed write):")
    local = _in_process(args.requests)
    server = crud.start_server(None)
    dbs: list[int] = []
    failure = None
    validate_rows: list[dict[str, Any]] = []
    write_rows: list[dict[str, Any]] = []
    try:
        await crud._wait_healthy(server.url, server.process)
        crud.authorize(server)
        dbs = [p.pid for p in crud.db_processes(server.pid)] if server.pid is not None else []
        print("\n$validate over HTTP:")
        validate_rows = await _validate_phase(server, args.requests)
        print("\ncreate over HTTP (claimed profile: full check; unclaimed: vocabulary check):")
        write_rows = await _write_phase(server, args.requests)
    except Exception as exc:  # reported with the figures so far; the server is stopped below in any case
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        stop = crud.stop_server(server, dbs)
        print("\n" + crud.describe_stop(stop))
    errors = sum(r["errors"] for r in validate_rows + write_rows)
    if failure:
        print(f"\nFAILURE: {failure}")
    print(
        json.dumps(
            {
                "in_process": local,
                "validate": validate_rows,
                "create": write_rows,
                "errors": errors,
                "failure": failure,
            }
        )
    )
    return 1 if failure or errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per resource and phase")
    sys.exit(asyncio.run(bench(parser.parse_args())))


if __name__ == "__main__":
    main()
