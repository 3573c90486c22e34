"""Export jobs in MongoDB: what was asked, by whom, how far the work went, and who holds it (leases).

One document per job in ``bulk_jobs``::

    {_id, owner: {client, sub}, claims, unrestricted, request, tt: transactionTime, created,
     spec: {level, group, types, since, until, filters, elements, patients, research},
     parts: [{kind: output|deleted, type, done, count, cursor, files: [{name, count, size}]}],
     notes, status: queued|running|done|failed|cancelled, attempt, lease_owner, lease_until,
     live, completed, expires, error}

A worker *claims* a job whose lease is free or ran out (one atomic update that also bumps ``attempt``),
renews the lease while it works, and records each finished file together with the cursor after its
last line. Every such write is conditional on the worker still holding the lease at that attempt, so
a worker that lost its job (it was slow, or another took over after it died) can record nothing:
the content of a job is exactly the recorded files, whoever wrote them.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument

from fhir_server.bulk.ndjson import OutputFile
from fhir_server.fhir.dates import now_ms as now
from fhir_server.fhir.errors import FhirError
from fhir_server.storage.client import Document, Mongo

JOBS = "bulk_jobs"
_SETTINGS = "bulk_settings"
ACTIVE = ("queued", "running")


class TooManyJobs(FhirError):
    """The client already has as many exports in progress as it may (429)."""

    status = 429
    default_code = "throttled"


@dataclass(frozen=True)
class ExportSpec:
    """What a kick-off asked for, validated (fhir_server.operations.export)."""

    level: str  # system, patient or group
    types: list[str]
    group: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # _typeFilter: per type, the search queries (OR-ed) a resource must match.
    filters: dict[str, list[str]] = field(default_factory=dict)
    elements: list[str] = field(default_factory=list)
    # Patient compartments the export is confined to (the patient parameter, a Group's members).
    patients: list[str] | None = None
    research: bool = False

    def to_doc(self) -> Document:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Document) -> ExportSpec:
        return cls(**doc)


def _parts(spec: ExportSpec) -> list[Document]:
    parts = [_part("output", t) for t in spec.types]
    if spec.since is not None:
        parts += [_part("deleted", t) for t in spec.types]
    return parts


def _part(kind: str, rtype: str) -> Document:
    return {"kind": kind, "type": rtype, "done": False, "count": 0, "cursor": None, "files": []}


class Jobs:
    """The job queue of one database, shared by every server and worker process."""

    def __init__(self, mongo: Mongo, folder: Path, lease_seconds: int) -> None:
        self.db = mongo.db
        self.coll = mongo.db[JOBS]
        self.folder = folder
        self.lease = timedelta(seconds=max(1, lease_seconds))

    async def ensure_indexes(self) -> None:
        await self.coll.create_indexes(
            [
                IndexModel([("status", ASCENDING), ("lease_until", ASCENDING)], name="claimable"),
                IndexModel([("owner.client", ASCENDING), ("status", ASCENDING)], name="per_client"),
            ]
        )

    def job_folder(self, job_id: str) -> Path:
        return self.folder / job_id

    async def create(
        self,
        owner: Document,
        claims: Document,
        unrestricted: bool,
        request: str,
        spec: ExportSpec,
        transaction_time: datetime,
        max_active: int,
        notes: list[str],
    ) -> str:
        """Queue a job; 429 when ``owner`` already has ``max_active`` jobs queued or running."""
        active = await self.coll.count_documents({"owner.client": owner["client"], "status": {"$in": ACTIVE}})
        if active >= max_active:
            raise TooManyJobs(
                f"this client already has {active} exports in progress (at most {max_active}); "
                "wait for one to finish or cancel one",
                headers={"Retry-After": "30"},
            )
        job_id = secrets.token_hex(16)
        await self.coll.insert_one(
            {
                "_id": job_id,
                "owner": owner,
                "claims": claims,
                "unrestricted": unrestricted,
                "request": request,
                "tt": transaction_time,
                "created": now(),
                "spec": spec.to_doc(),
                "parts": _parts(spec),
                "notes": notes,
                "status": "queued",
                "attempt": 0,
            }
        )
        return job_id

    async def get(self, job_id: str) -> Document | None:
        """The job, or None once it is unknown, cancelled or expired."""
        job = await self.coll.find_one({"_id": job_id})
        if job is None or job["status"] == "cancelled":
            return None
        expires = job.get("expires")
        if expires is not None and expires <= now():
            return None
        return job

    async def cancel(self, job_id: str) -> None:
        """Stop the job: its worker notices at its next write, the sweep deletes its files."""
        await self.coll.update_one({"_id": job_id}, {"$set": {"status": "cancelled", "expires": now()}})

    # -- workers -------------------------------------------------------------------------------

    async def claim(self, worker: str) -> Document | None:
        """Take the oldest job that is waiting, or whose worker's lease ran out."""
        t = now()
        return await self.coll.find_one_and_update(
            {
                "status": {"$in": ACTIVE},
                "$or": [{"lease_until": {"$exists": False}}, {"lease_until": {"$lt": t}}],
            },
            {
                "$set": {"status": "running", "lease_owner": worker, "lease_until": t + self.lease},
                "$inc": {"attempt": 1},
            },
            sort=[("created", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    def _held(self, job: Document) -> Document:
        return {
            "_id": job["_id"],
            "status": "running",
            "lease_owner": job["lease_owner"],
            "attempt": job["attempt"],
        }

    async def renew(self, job: Document, exported: int) -> bool:
        """Extend the lease (and show progress); False when the job is no longer this worker's."""
        update = {"$set": {"lease_until": now() + self.lease, "live": exported}}
        return (await self.coll.update_one(self._held(job), update)).matched_count == 1

    async def release(self, job: Document) -> None:
        """Give the job up (this process stops): another worker may claim it right away."""
        await self.coll.update_one(self._held(job), {"$set": {"lease_until": now()}})

    async def record_file(
        self, job: Document, part: int, file: OutputFile | None, cursor: str | None, done: bool
    ) -> bool:
        """Record a finished file (and the cursor after its last line); False when the lease is lost."""
        update: Document = {"$set": {"lease_until": now() + self.lease, f"parts.{part}.done": done}}
        if file is not None:
            update["$push"] = {f"parts.{part}.files": file.to_doc()}
            update["$inc"] = {f"parts.{part}.count": file.count}
            update["$set"][f"parts.{part}.cursor"] = cursor
        return (await self.coll.update_one(self._held(job), update)).matched_count == 1

    async def complete(self, job: Document, ttl: int, errors: list[OutputFile]) -> bool:
        t = now()
        update = {
            "$set": {
                "status": "done",
                "completed": t,
                "expires": t + timedelta(seconds=ttl),
                "errors": [e.to_doc() for e in errors],
            },
            "$unset": {"lease_owner": "", "lease_until": ""},
        }
        return (await self.coll.update_one(self._held(job), update)).matched_count == 1

    async def fail(self, job: Document, ttl: int, message: str) -> None:
        t = now()
        await self.coll.update_one(
            self._held(job),
            {
                "$set": {
                    "status": "failed",
                    "error": message,
                    "completed": t,
                    "expires": t + timedelta(seconds=ttl),
                }
            },
        )

    async def sweep(self) -> int:
        """Delete cancelled and expired jobs with their files; how many went."""
        gone = 0
        async for job in self.coll.find(
            {"$or": [{"status": "cancelled"}, {"expires": {"$lte": now()}}]}, {"_id": 1}
        ):
            shutil.rmtree(self.job_folder(job["_id"]), ignore_errors=True)
            await self.coll.delete_one({"_id": job["_id"]})
            gone += 1
        return gone

    async def pseudonym_secret(self, configured: str) -> bytes:
        """The research pseudonyms' key: FHIR_PSEUDONYM_SECRET, or one generated once and kept in
        MongoDB (the first process to need it stores it; every later one reads the same)."""
        if configured:
            return configured.encode()
        await self.db[_SETTINGS].update_one(
            {"_id": "pseudonym-secret"}, {"$setOnInsert": {"value": secrets.token_hex(32)}}, upsert=True
        )
        doc = await self.db[_SETTINGS].find_one({"_id": "pseudonym-secret"})
        assert doc is not None
        return bytes.fromhex(str(doc["value"]))


def describe_progress(job: Document) -> str:
    """The ``X-Progress`` of a job still running."""
    parts = job["parts"]
    done = sum(1 for p in parts if p["done"])
    exported = max(int(job.get("live") or 0), sum(int(p["count"]) for p in parts))
    if job["status"] == "queued":
        return "queued"
    return f"{done}/{len(parts)} parts done, {exported} resources exported"


def owner_of(claims: dict[str, Any]) -> Document:
    """Who may see a job's status and files: the client, and the user it acted for."""
    return {"client": str(claims.get("client_id") or ""), "sub": str(claims.get("sub") or "")}
