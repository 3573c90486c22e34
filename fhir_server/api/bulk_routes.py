"""Routes of running exports: the status URL (poll, cancel) and the output files (Bulk Data Access 2.0).

``GET [base]/bulk/status/{job}``: 202 with ``X-Progress`` and ``Retry-After`` while the job runs, 200
with the manifest once done, 500 with an OperationOutcome if it failed; ``DELETE`` cancels it (202),
after which the URL is a 404. ``GET [base]/bulk/files/{job}/{name}``: an NDJSON file, gzip-encoded
when the client accepts it. Both need a token of the client (and user) that asked for the export.
Included before the FHIR router, whose ``/{rtype}/{rid}`` patterns would take these paths.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fhir_server.api.http import json_response
from fhir_server.api.security import request_access
from fhir_server.bulk.jobs import Document, Jobs, describe_progress, owner_of
from fhir_server.fhir.codec import dumps
from fhir_server.fhir.dates import instant
from fhir_server.fhir.errors import FhirError, Forbidden, NotAcceptable, NotFound

bulk_router = APIRouter()
NDJSON = "application/fhir+ndjson"
_ACCEPTED_FILES = {NDJSON, "application/ndjson", "ndjson", "*/*", "application/*"}
_CHUNK = 256 * 1024
_RETRY_AFTER = "2"


async def _job(request: Request, job_id: str) -> tuple[Jobs, Document]:
    """The job, if the caller's token is one of the client (and user) that asked for it."""
    access = await request_access(request)
    jobs: Jobs = request.app.state.export_jobs
    job = await jobs.get(job_id)
    if job is None:
        raise NotFound(f"there is no export {job_id} (unknown, cancelled or expired)")
    if request.app.state.services.settings.auth and owner_of(access.claims) != job["owner"]:
        raise Forbidden("this export belongs to another client", code="forbidden")
    return jobs, job


def _expires(job: Document) -> dict[str, str]:
    expires: datetime | None = job.get("expires")
    return {"Expires": format_datetime(expires.astimezone(UTC), usegmt=True)} if expires else {}


def manifest(base: str, job: Document) -> dict[str, Any]:
    """The completion manifest of a finished job."""

    def entries(kind: str, type_of: Any) -> list[dict[str, Any]]:
        return [
            {"type": type_of(p), "url": f"{base}/bulk/files/{job['_id']}/{f['name']}", "count": f["count"]}
            for p in job["parts"]
            if p["kind"] == kind
            for f in p["files"]
        ]

    out: dict[str, Any] = {
        "transactionTime": instant(job["tt"]),
        "request": job["request"],
        "requiresAccessToken": True,
        "output": entries("output", lambda p: p["type"]),
        "error": [
            {
                "type": "OperationOutcome",
                "url": f"{base}/bulk/files/{job['_id']}/{e['name']}",
                "count": e["count"],
            }
            for e in job.get("errors") or []
        ],
    }
    if job["spec"].get("since") is not None:
        out["deleted"] = entries("deleted", lambda p: "Bundle")
    return out


@bulk_router.get("/bulk/status/{job_id}")
async def export_status(request: Request, job_id: str) -> Response:
    _, job = await _job(request, job_id)
    status = job["status"]
    if status == "done":
        body = manifest(request.app.state.services.settings.fhir_base, job)
        return Response(dumps(body), 200, headers=_expires(job), media_type="application/json")
    if status == "failed":
        raise FhirError(str(job.get("error") or "the export failed"), code="exception")
    return Response(
        status_code=202, headers={"X-Progress": describe_progress(job), "Retry-After": _RETRY_AFTER}
    )


@bulk_router.delete("/bulk/status/{job_id}")
async def cancel_export(request: Request, job_id: str) -> Response:
    jobs, job = await _job(request, job_id)
    await jobs.cancel(job["_id"])
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "information", "code": "informational", "diagnostics": f"export {job_id} cancelled"}
        ],
    }
    return json_response(request, outcome, 202)


def _stream(path: Path, gzip: bool) -> Iterator[bytes]:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            out = packer.compress(chunk) if packer else chunk
            if out:
                yield out
    if packer:
        yield packer.flush()


@bulk_router.get("/bulk/files/{job_id}/{name}")
async def export_file(request: Request, job_id: str, name: str) -> Response:
    jobs, job = await _job(request, job_id)
    if job["status"] != "done":
        raise NotFound(f"export {job_id} has no files yet")
    names = {f["name"] for p in job["parts"] for f in p["files"]} | {
        e["name"] for e in job.get("errors") or []
    }
    if name not in names:
        raise NotFound(f"export {job_id} has no file {name}")
    accept = request.headers.get("accept")
    if accept and not {a.split(";", 1)[0].strip().lower() for a in accept.split(",")} & _ACCEPTED_FILES:
        raise NotAcceptable(f"export files are {NDJSON}; cannot answer in '{accept}'")
    encodings = {
        e.split(";", 1)[0].strip().lower() for e in request.headers.get("accept-encoding", "").split(",")
    }
    gzip = "gzip" in encodings
    headers = {**_expires(job), "Vary": "Accept-Encoding"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    path = jobs.job_folder(job_id) / name
    return StreamingResponse(_stream(path, gzip), 200, headers=headers, media_type=NDJSON)
