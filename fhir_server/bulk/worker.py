"""Export workers: claim a job, rebuild the caller's access, stream its snapshot to NDJSON files.

The same :class:`ExportWorker` runs as tasks inside the server (``FHIR_EXPORT_WORKERS``) and in
``fhir-server export-worker`` processes; they share the queue in MongoDB (fhir_server.bulk.jobs).
Memory stays bounded: one cursor batch at a time is transformed and written, never a whole type.

Resumption: a part (one type's resources, or its deletions) goes into numbered files; each finished
file is recorded with the ``_id`` of its last history document. A worker taking over a job whose
worker died skips the parts marked done and continues each other part after its last recorded file,
so the recorded files hold every resource of the snapshot exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from fhir_server.auth.access import Access
from fhir_server.auth.matrix import Matrix
from fhir_server.auth.policy import DENY, AccessMode, build_policy
from fhir_server.bulk.deidentify import Pseudonymizer
from fhir_server.bulk.jobs import ExportSpec, Jobs
from fhir_server.bulk.ndjson import NdjsonWriter, OutputFile, file_number
from fhir_server.bulk.snapshot import Snapshot
from fhir_server.config import Settings
from fhir_server.fhir.codec import dumps
from fhir_server.fhir.elements import select_elements
from fhir_server.fhir.errors import BadRequest
from fhir_server.search.compiler import Filter
from fhir_server.search.engine import SearchEngine
from fhir_server.search.request import parse_search
from fhir_server.storage.repository import Repository

log = logging.getLogger("fhir_server.bulk")
Document = dict[str, Any]
_IDLE_POLL = 1.0
_SWEEP_EVERY = 60.0


class LeaseLost(Exception):
    """The job was cancelled or taken over: this worker stops writing."""


class ExportWorker:
    """One worker: ``run`` loops until stopped; ``run_pending`` works until the queue is empty."""

    def __init__(
        self, repo: Repository, engine: SearchEngine, matrix: Matrix, settings: Settings, jobs: Jobs
    ) -> None:
        self.repo = repo
        self.engine = engine
        self.matrix = matrix
        self.settings = settings
        self.jobs = jobs
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def run(self, stop: asyncio.Event) -> None:
        """Work jobs until ``stop`` is set; sweep expired jobs now and then."""
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                if loop.time() - last_sweep > _SWEEP_EVERY:
                    last_sweep = loop.time()
                    await self.jobs.sweep()
                if await self.run_one():
                    continue
            except Exception:
                log.exception("export worker %s: unexpected error", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _IDLE_POLL)

    async def run_pending(self) -> int:
        """Work every claimable job, then return how many were worked (tests, one-shot runs)."""
        n = 0
        while await self.run_one():
            n += 1
        return n

    async def run_one(self) -> bool:
        """Claim one job and work it; False when there was none to claim."""
        job = await self.jobs.claim(self.name)
        if job is None:
            return False
        log.info("export %s: attempt %d by %s", job["_id"], job["attempt"], self.name)
        progress = {"count": sum(int(p["count"]) for p in job["parts"]), "lost": 0}
        heartbeat = asyncio.create_task(self._heartbeat(job, progress))
        try:
            await self._work(job, progress)
        except asyncio.CancelledError:
            # The process is stopping: let another worker take the job over at once.
            await self.jobs.release(job)
            raise
        except LeaseLost:
            log.info("export %s: no longer held by %s; stopped", job["_id"], self.name)
            if await self.jobs.get(job["_id"]) is None:
                # Cancelled: nobody will read these files (the sweep would delete them too).
                shutil.rmtree(self.jobs.job_folder(job["_id"]), ignore_errors=True)
        except Exception as exc:
            log.exception("export %s failed", job["_id"])
            await self.jobs.fail(job, self.settings.export_ttl, f"the export failed: {exc}")
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return True

    async def _heartbeat(self, job: Document, progress: dict[str, int]) -> None:
        interval = max(0.2, self.jobs.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            if not await self.jobs.renew(job, progress["count"]):
                progress["lost"] = 1
                return

    async def _access(self, job: Document) -> Access:
        """The requesting caller's access, rebuilt from the claims kept in the job."""
        if job.get("unrestricted"):
            return Access.full()
        claims = job["claims"]
        policy = await build_policy(self.repo.db, self.matrix, claims, AccessMode(), self.settings.fhir_base)
        return await Access.from_claims(claims, self.engine, policy)

    async def _work(self, job: Document, progress: dict[str, int]) -> None:
        spec = ExportSpec.from_doc(job["spec"])
        access = await self._access(job)
        folder = self.jobs.job_folder(job["_id"])
        snapshot = Snapshot(
            self.repo, job["tt"], spec.since, spec.until, spec.patients, f"bulk_scratch_{job['_id']}"
        )
        pseudonyms = None
        if spec.research:
            secret = await self.jobs.pseudonym_secret(self.settings.pseudonym_secret)
            pseudonyms = Pseudonymizer(secret, self.settings.fhir_base)
        try:
            together: list[int] = []
            if snapshot.groups is not None:
                # A Patient or Group export reads each group of patients once for all its types.
                together = [i for i, p in enumerate(job["parts"]) if p["kind"] == "output" and not p["done"]]
                await self._patients_output(job, together, spec, snapshot, access, pseudonyms, progress)
            for i, part in enumerate(job["parts"]):
                if part["done"] or i in together:
                    continue
                run = self._part_run(job, i, progress)
                writer = run.writer
                try:
                    restrict = access.history_filter([part["type"]], skip_narrowed=True)
                    if restrict is not DENY:
                        if part["kind"] == "output":
                            await self._output(run, part, spec, snapshot, access, restrict, pseudonyms)
                        else:
                            await self._deleted(run, part, snapshot, restrict, pseudonyms)
                    await run.close()
                except BaseException:
                    writer.abandon()
                    raise
        finally:
            await snapshot.drop_scratch()
        errors = _notes_file(folder, job)
        if not await self.jobs.complete(job, self.settings.export_ttl, errors):
            raise LeaseLost
        final = await self.jobs.get(job["_id"])
        if final is not None:
            _remove_strays(folder, final)

    def _part_run(self, job: Document, index: int, progress: dict[str, int]) -> _PartRun:
        """The writing of part ``index``, into files numbered after those it has recorded."""
        part = job["parts"][index]
        writer = NdjsonWriter(
            self.jobs.job_folder(job["_id"]),
            part["type"] if part["kind"] == "output" else f"Deleted-{part['type']}",
            job["attempt"],
            self.settings.export_file_max_bytes,
            max((file_number(f["name"]) for f in part["files"]), default=0) + 1,
        )
        return _PartRun(self, job, index, writer, progress)

    async def _patients_output(
        self,
        job: Document,
        indexes: list[int],
        spec: ExportSpec,
        snapshot: Snapshot,
        access: Access,
        pseudonyms: Pseudonymizer | None,
        progress: dict[str, int],
    ) -> None:
        """Write the output parts ``indexes`` of a Patient or Group export from one scan per group of
        patients; each part resumes after its own last recorded line."""
        runs: dict[str, tuple[_PartRun, Filter | None, list[str]]] = {}
        scans: dict[str, tuple[Filter | None, str | None]] = {}
        try:
            for i in indexes:
                part = job["parts"][i]
                rtype = part["type"]
                run = self._part_run(job, i, progress)
                restrict = access.history_filter([rtype], skip_narrowed=True)
                if restrict is DENY:
                    await run.close()
                    continue
                type_filter = await self._type_filter(rtype, spec.filters.get(rtype), access)
                runs[rtype] = (run, type_filter, _elements_for(rtype, spec.elements))
                scans[rtype] = (restrict, part["cursor"])
            async for rtype, batch in snapshot.patient_batches(scans):
                run, type_filter, elements = runs[rtype]
                if type_filter is not None:
                    batch = await snapshot.matching(rtype, batch, type_filter)
                for doc in batch:
                    await run.write(_line(doc["res"], elements, pseudonyms), doc["at"])
            for run, _, _ in runs.values():
                await run.close()
        except BaseException:
            for run, _, _ in runs.values():
                run.writer.abandon()
            raise

    async def _output(
        self,
        run: _PartRun,
        part: Document,
        spec: ExportSpec,
        snapshot: Snapshot,
        access: Access,
        restrict: Filter | None,
        pseudonyms: Pseudonymizer | None,
    ) -> None:
        rtype = part["type"]
        type_filter = await self._type_filter(rtype, spec.filters.get(rtype), access)
        elements = _elements_for(rtype, spec.elements)
        async for batch in snapshot.batches(rtype, restrict, type_filter, part["cursor"]):
            for doc in batch:
                await run.write(_line(doc["res"], elements, pseudonyms), doc["at"])

    async def _deleted(
        self,
        run: _PartRun,
        part: Document,
        snapshot: Snapshot,
        restrict: Filter | None,
        pseudonyms: Pseudonymizer | None,
    ) -> None:
        rtype = part["type"]
        async for batch in snapshot.deletions(rtype, restrict, part["cursor"]):
            for doc in batch:
                rid = pseudonyms.resource_id(rtype, doc["id"]) if pseudonyms else doc["id"]
                bundle = {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [{"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}}],
                }
                await run.write(orjson.dumps(bundle), doc["at"])

    async def _type_filter(self, rtype: str, queries: list[str] | None, access: Access) -> Filter | None:
        """The OR of a type's ``_typeFilter`` queries, compiled (chains see what the caller may see)."""
        if not queries:
            return None
        compiled: list[Filter] = []
        for query in queries:
            pairs = parse_qsl(query, keep_blank_values=True)
            try:
                req = parse_search(rtype, pairs, default_count=1, max_count=1, strict=True)
            except BadRequest as exc:
                # Checked at kick-off; the registry cannot have changed since, but say so if it did.
                raise BadRequest(f"_typeFilter {rtype}?{query}: {exc}") from exc
            compiled.append(await self.engine.filter_for(req, access.restrict))
        if any(not c for c in compiled):
            return None
        return compiled[0] if len(compiled) == 1 else {"$or": compiled}


@contextlib.asynccontextmanager
async def worker_pool(workers: list[ExportWorker]) -> AsyncIterator[None]:
    """Run ``workers`` as tasks for the duration of the block; on exit their jobs are released."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _PartRun:
    """The writing of one part by one worker: files, their recording, progress."""

    def __init__(
        self, worker: ExportWorker, job: Document, index: int, writer: NdjsonWriter, progress: dict[str, int]
    ) -> None:
        self.jobs = worker.jobs
        self.job = job
        self.index = index
        self.writer = writer
        self.progress = progress
        self.last: str | None = None

    async def write(self, line: bytes, key: str) -> None:
        if self.progress["lost"]:
            raise LeaseLost
        if not self.writer.fits(line):
            await self._record(self.writer.finish(), done=False)
        self.writer.write(line)
        self.last = key
        self.progress["count"] += 1

    async def close(self) -> None:
        await self._record(self.writer.finish(), done=True)

    async def _record(self, file: OutputFile | None, done: bool) -> None:
        if not await self.jobs.record_file(self.job, self.index, file, self.last, done):
            raise LeaseLost


def _line(res: Document, elements: list[str], pseudonyms: Pseudonymizer | None) -> bytes:
    """An exported resource's NDJSON line: its ``_elements`` subset, de-identified for research."""
    if elements:
        res = select_elements(res, elements)
    if pseudonyms is not None:
        res = pseudonyms.transform(res)
    return dumps(res)


def _elements_for(rtype: str, elements: list[str]) -> list[str]:
    """The ``_elements`` that apply to ``rtype``: unprefixed ones and those prefixed with it."""
    return [e for e in elements if "." not in e or e.split(".", 1)[0] == rtype]


def _notes_file(folder: Path, job: Document) -> list[OutputFile]:
    """The OperationOutcome file of what the export left out (ignored parameters, types withheld)."""
    notes = job.get("notes") or []
    if not notes:
        return []
    writer = NdjsonWriter(folder, "OperationOutcome", job["attempt"], 1 << 62)
    issues = [{"severity": "information", "code": "informational", "diagnostics": n} for n in notes]
    writer.write(orjson.dumps({"resourceType": "OperationOutcome", "issue": issues}))
    done = writer.finish()
    return [done] if done else []


def _remove_strays(folder: Path, job: Document) -> None:
    """Delete files the finished job does not hold (left by a worker that died or lost its lease)."""
    kept = {f["name"] for p in job["parts"] for f in p["files"]} | {
        e["name"] for e in job.get("errors") or []
    }
    if folder.exists():
        for path in folder.iterdir():
            if path.name not in kept:
                path.unlink(missing_ok=True)
