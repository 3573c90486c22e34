"""``Patient/$summary`` benchmark: p50/p95 latency of the summary of one patient with a year of history.

Starts ``fhir-server serve`` on a free port with a throw-away embedded database, loads one patient
through the API (one transaction Bundle: the patient, their attending doctor and other professionals,
``--documents`` documents of the DMP types, ``--months`` months of reimbursements — consultations,
imaging, biology, monthly pharmacy — allergies, treatments and the Consent that authorizes the doctor),
then times ``--calls`` sequential ``$summary`` calls per caller: an operator (system token, no DMP
policy), the attending doctor (professional token, DMP policy) and the HTML page for the doctor; a
plain read of the Patient, ``$prior-exams`` and ``$everything`` are timed the same way for comparison::

    python bench/summary.py --calls 200 --documents 50 --months 12

Prints the figures per caller, then one JSON line with everything (the last line of output). Only
127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

import crud  # noqa: E402

Json = dict[str, Any]
LOINC = "http://loinc.org"
CCAM = "https://smt.esante.gouv.fr/terminologie-ccam"
NABM = "https://dmp-fhir.org/CodeSystem/nabm"
NGAP = "https://dmp-fhir.org/CodeSystem/ngap"
CIP = "https://smt.esante.gouv.fr/terminologie-cip_ucd"
PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
CLASS = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
VISIBILITY = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
)
DOC_TYPES = {
    "60591-5": "11",
    "11490-0": "10",
    "11502-2": "10",
    "18748-4": "31",
    "11488-4": "10",
    "34874-8": "10",
}
IMAGING = [("ZBQK002", "Radiographie du thorax"), ("ZCQM005", "Échographie transcutanée de l'abdomen")]
BIOLOGY = [("1104", "Hémogramme"), ("0552", "Glucose (glycémie)"), ("1577", "Hémoglobine glyquée (HbA1c)")]
DRUGS = [("3400930000001", "Metformine 850 mg"), ("3400930000002", "Ramipril 5 mg")]


def _uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _put(entries: list[Json], url: str, resource: Json) -> str:
    entries.append(
        {"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    )
    return url


def _claim(pid: str, who: str, when: date, kind: str, items: list[tuple[str, str, str]]) -> Json:
    return {
        "resourceType": "ExplanationOfBenefit",
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": kind}]},
        "use": "claim",
        "patient": {"reference": pid},
        "created": when.isoformat(),
        "insurer": {"display": "Assurance Maladie"},
        "provider": {"reference": who},
        "outcome": "complete",
        "careTeam": [{"sequence": 1, "provider": {"reference": who}}],
        "insurance": [{"focal": True, "coverage": {"display": "Régime général"}}],
        "item": [
            {
                "sequence": i,
                "careTeamSequence": [1],
                "productOrService": {"coding": [{"system": s, "code": c, "display": d}], "text": d},
                "servicedDate": when.isoformat(),
            }
            for i, (s, c, d) in enumerate(items, 1)
        ],
    }


def history_bundle(documents: int, months: int, seed: int) -> Json:
    """One transaction Bundle: a patient with ``documents`` documents and ``months`` of reimbursements."""
    rng = random.Random(seed)
    today = date.today()
    entries: list[Json] = []
    quals = [{"code": {"coding": [{"system": PROFESSION, "code": "10"}]}}]
    gp = _put(
        entries,
        _uuid(),
        {
            "resourceType": "Practitioner",
            "name": [{"family": "Martin", "given": ["Claire"]}],
            "qualification": quals,
        },
    )
    others = [
        _put(
            entries,
            _uuid(),
            {
                "resourceType": "Practitioner",
                "name": [{"family": f"Spécialiste {k}"}],
                "qualification": quals,
            },
        )
        for k in range(5)
    ]
    lab = _put(entries, _uuid(), {"resourceType": "Organization", "name": "Laboratoire du Centre"})
    pharmacy = _put(entries, _uuid(), {"resourceType": "Organization", "name": "Pharmacie de la Gare"})
    pid = _put(
        entries,
        _uuid(),
        {
            "resourceType": "Patient",
            "name": [{"family": "Lefèvre", "given": ["Hélène"]}],
            "gender": "female",
            "birthDate": "1958-04-12",
            "generalPractitioner": [{"reference": gp}],
        },
    )
    _put(
        entries,
        _uuid(),
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "patient": {"reference": pid},
            "policyRule": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
            },
            "provision": {
                "type": "permit",
                "actor": [
                    {
                        "role": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                    "code": "PRCP",
                                }
                            ]
                        },
                        "reference": {"reference": gp},
                    }
                ],
            },
        },
    )
    for text in ("Pénicilline", "Arachide", "Latex"):
        _put(
            entries,
            _uuid(),
            {
                "resourceType": "AllergyIntolerance",
                "patient": {"reference": pid},
                "code": {"text": text},
                "criticality": "high",
            },
        )
    for code, label in DRUGS:
        _put(
            entries,
            _uuid(),
            {
                "resourceType": "MedicationStatement",
                "status": "active",
                "subject": {"reference": pid},
                "medicationCodeableConcept": {"coding": [{"system": CIP, "code": code}], "text": label},
                "dosage": [{"text": "1 comprimé par jour"}],
            },
        )
    types = list(DOC_TYPES)
    for k in range(documents):
        type_code = types[k % len(types)]
        when = today - timedelta(days=rng.randint(1, 3 * 365))
        doc: Json = {
            "resourceType": "DocumentReference",
            "status": "current",
            "type": {"coding": [{"system": LOINC, "code": type_code}]},
            "category": [{"coding": [{"system": CLASS, "code": DOC_TYPES[type_code]}]}],
            "subject": {"reference": pid},
            "date": f"{when.isoformat()}T10:00:00+01:00",
            "author": [{"reference": rng.choice([gp, *others])}],
            "content": [
                {"attachment": {"contentType": "application/pdf", "url": f"http://example.org/doc-{k}.pdf"}}
            ],
        }
        if k % 10 == 9:
            doc["meta"] = {"security": [{"system": VISIBILITY, "code": "MASQUE_PS"}]}
        _put(entries, _uuid(), doc)
    for month in range(months):
        start = today - timedelta(days=30 * month)
        _put(
            entries,
            _uuid(),
            _claim(
                pid,
                gp,
                start - timedelta(days=2),
                "professional",
                [(NGAP, "G", "Consultation de médecine générale")],
            ),
        )
        _put(
            entries,
            _uuid(),
            _claim(pid, pharmacy, start - timedelta(days=3), "pharmacy", [(CIP, c, d) for c, d in DRUGS]),
        )
        _put(
            entries,
            _uuid(),
            _claim(pid, lab, start - timedelta(days=5), "professional", [(NABM, c, d) for c, d in BIOLOGY]),
        )
        if month % 3 == 0:
            code, label = IMAGING[month % 2]
            _put(
                entries,
                _uuid(),
                _claim(
                    pid, rng.choice(others), start - timedelta(days=9), "professional", [(CCAM, code, label)]
                ),
            )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _token(server: crud.Server, *args: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_")}
    env["FHIR_BASE_URL"] = f"{server.url}/fhir"
    cmd = [crud._fhir_server_command(), *args, "--data-dir", str(server.data_dir)]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=120, check=True, input="bench-password\n"
    )
    return {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}


async def _time_calls(client: httpx.AsyncClient, url: str, headers: dict[str, str], calls: int) -> Json:
    latencies: list[float] = []
    sizes: set[int] = set()
    for _ in range(calls):
        started = time.perf_counter()
        r = await client.get(url, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
        sizes.add(len(r.content))
    latencies.sort()
    return {
        "calls": calls,
        "p50_ms": round(crud.percentile(latencies, 50), 1),
        "p95_ms": round(crud.percentile(latencies, 95), 1),
        "max_ms": round(latencies[-1], 1),
        "response_bytes": sorted(sizes)[-1],
    }


async def bench(args: argparse.Namespace) -> int:
    server = crud.start_server(None)
    print(f"machine   {json.dumps(crud.machine(), ensure_ascii=False)}")
    figures: Json = {"documents": args.documents, "months": args.months, "calls": args.calls, "callers": {}}
    failure = None
    dbs: list[int] = []
    try:
        await crud._wait_healthy(server.url, server.process)
        crud.authorize(server)
        dbs = [p.pid for p in crud.db_processes(server.pid)] if server.pid is not None else []
        base = f"{server.url}/fhir"
        async with httpx.AsyncClient(timeout=120) as client:
            bundle = history_bundle(args.documents, args.months, args.seed)
            started = time.perf_counter()
            r = await client.post(
                base, json=bundle, headers={**server.headers, "Content-Type": "application/fhir+json"}
            )
            if r.status_code != 200:
                raise RuntimeError(f"loading failed: {r.status_code} {r.text[:500]}")
            figures["load"] = {
                "entries": len(bundle["entry"]),
                "seconds": round(time.perf_counter() - started, 2),
            }
            made = [e["response"]["location"].split("/_history")[0] for e in r.json()["entry"]]
            gp_id = made[0].rsplit("/", 1)[1]
            pid = next(m for m in made if m.startswith("Patient/")).rsplit("/", 1)[1]
            _token(
                server,
                "users",
                "add",
                "bench-doctor",
                "--password-stdin",
                "--role",
                "practitioner",
                "--practitioner",
                gp_id,
            )
            doctor = _token(server, "token", "--scope", "user/*.rs", "--user", "bench-doctor")
            url = f"{base}/Patient/{pid}/$summary"
            for label, target, headers in (
                ("baseline: read of the Patient", f"{base}/Patient/{pid}", doctor),
                ("operator (system/*.*)", url, server.headers),
                ("attending doctor (DMP policy)", url, doctor),
                ("attending doctor, HTML page", f"{url}?_format=html", doctor),
                (
                    "for comparison: $prior-exams",
                    f"{base}/Patient/{pid}/$prior-exams?code={CCAM}|ZBQK002",
                    doctor,
                ),
                ("for comparison: $everything", f"{base}/Patient/{pid}/$everything?_count=200", doctor),
            ):
                await _time_calls(client, target, headers, min(10, args.calls))  # warm-up
                result = await _time_calls(client, target, headers, args.calls)
                figures["callers"][label] = result
                print(
                    f"  {label:<32} p50 {result['p50_ms']} ms  p95 {result['p95_ms']} ms  max {result['max_ms']} ms  {result['response_bytes']} bytes"
                )
    except Exception as exc:  # reported with the figures so far; the server is stopped below in any case
        failure = f"{type(exc).__name__}: {exc}"
        print(f"FAILURE: {failure}")
    finally:
        stop = crud.stop_server(server, dbs)
        print(crud.describe_stop(stop))
    if server.temp_dir and server.data_dir is not None:
        shutil.rmtree(server.data_dir, ignore_errors=True)
    figures.update({"machine": crud.machine(), "stop": stop, "failure": failure})
    print(json.dumps(figures, ensure_ascii=False))
    return 1 if failure else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="timed calls per caller (default 200)")
    parser.add_argument("--documents", type=int, default=50, help="documents of the patient (default 50)")
    parser.add_argument("--months", type=int, default=12, help="months of reimbursements (default 12)")
    parser.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    args = parser.parse_args()
    if args.calls < 1 or args.documents < 0 or args.months < 0:
        parser.error("--calls must be at least 1, --documents and --months not negative")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main())
