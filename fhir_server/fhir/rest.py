"""The FHIR RESTful interactions on resources, independent of HTTP.

Each interaction takes plain values (type, id, parsed body, precondition) and returns a :class:`Result`
the HTTP layer or the bundle processor renders. Writes run in a transaction of their own, or in the
caller's when a ``session`` is given (transaction bundles).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import jsonpatch

from fhir_server.auth.access import Access
from fhir_server.auth.labels import check_visibility, inherited, policy_labels
from fhir_server.auth.policy_cache import bump, changed_inputs
from fhir_server.auth.scopes import CREATE, DELETE, READ, UPDATE
from fhir_server.dmp import lifecycle
from fhir_server.fhir.dates import instant, now_ms
from fhir_server.fhir.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Issue,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Unprocessable,
    operation_outcome,
)
from fhir_server.fhir.registry import is_served
from fhir_server.fhir.validation import resource_type_of, validate_resource
from fhir_server.search.engine import SearchEngine
from fhir_server.search.index import derive, patient_compartments
from fhir_server.search.plan import choose_lead
from fhir_server.search.request import parse_search
from fhir_server.storage.indexes import HISTORY
from fhir_server.storage.repository import NewVersion, Record, Repository, Session, VersionConflict

Json = dict[str, Any]
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ETAG = re.compile(r'^(?:W/)?"?(\d+)"?$')


@dataclass
class Result:
    """What an interaction produced: status, body and the version it concerns."""

    status: int
    resource: Json | None = None
    record: Record | None = None
    # Whether the response should carry a Location header (create, update-as-create).
    location: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def body_for(result: Result, preference: str) -> Json | None:
    """The body a write returns under ``Prefer: return=minimal|representation|OperationOutcome``."""
    if preference == "minimal":
        return None
    if preference == "operationoutcome":
        rec = result.record
        what = f"{rec.rtype}/{rec.id} is at version {rec.version}" if rec else "nothing to report"
        return operation_outcome([Issue("informational", f"done: {what}", severity="information")])
    return result.resource


def new_version(
    rtype: str,
    rid: str,
    resource: Json | None,
    op: str,
    version: int,
    now: datetime,
    deleted_from: list[str] | None = None,
    labels: dict[str, Any] | None = None,
) -> NewVersion:
    """The stored form of a version: the resource with its id and meta stamped, and its search data.

    A deletion keeps the compartments of the version it deletes (``deleted_from``), so that the patient
    it belonged to still sees it in history and nobody else does. ``labels`` overrides the policy
    labels derived from the resource (a Binary inherits its document's)."""
    if resource is None:
        return NewVersion(rtype, rid, version, now, op, None, {}, {}, deleted_from or [], labels or {})
    meta = {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": instant(now)}
    rest = {k: v for k, v in resource.items() if k not in {"resourceType", "id", "meta"}}
    stored = {"resourceType": rtype, "id": rid, "meta": meta, **rest}
    d = derive(rtype, rid, stored)
    pol = labels if labels is not None else policy_labels(rtype, stored)
    return NewVersion(rtype, rid, version, now, op, stored, d.index, d.sort_keys, d.compartments, pol)


def check_type(rtype: str) -> None:
    """404 for a resource type this server does not serve."""
    if not is_served(rtype):
        raise NotFound(f"resource type '{rtype}' is not served here", code="not-supported")


def check_id(rid: str) -> None:
    """400 for a string that cannot be a FHIR id."""
    if not _ID.match(rid):
        raise BadRequest(f"'{rid}' is not a valid resource id", expression="id")


def parse_etag(value: str, header: str = "If-Match") -> int:
    """The version number in an ETag such as ``W/"3"``."""
    m = _ETAG.match(value.strip())
    if not m:
        raise BadRequest(f"{header} '{value}' is not a version ETag like W/\"3\"", expression=header)
    return int(m.group(1))


def parse_criteria(query: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of a conditional URL's query string."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        raise BadRequest("a conditional interaction needs search criteria", expression="criteria")
    return pairs


def new_id() -> str:
    """A server-assigned logical id."""
    return str(uuid.uuid4())


class ResourceService:
    """Create, read, update, patch, delete and their conditional forms, within one caller's access.

    The service built at start-up has full access; :meth:`bound` gives the same service for a request's
    access, and every interaction then checks it against storage (not against fetched content)."""

    def __init__(
        self,
        repo: Repository,
        engine: SearchEngine,
        access: Access | None = None,
        allow_invisible_and_masked: bool = False,
        retention_years: int = 10,
        history_months: int = 12,
    ) -> None:
        self.repo = repo
        self.engine = engine
        self.access = access or Access.full()
        self.allow_invisible_and_masked = allow_invisible_and_masked
        # How long a closed DMP is kept (and may be reopened), in years (fhir_server.dmp.lifecycle).
        self.retention_years = retention_years
        # How many months of staged reimbursements a DMP receives when opened (fhir_server.dmp.feed).
        self.history_months = history_months

    def bound(self, access: Access) -> ResourceService:
        """This service acting for a caller with ``access``."""
        return ResourceService(
            self.repo,
            self.engine,
            access,
            self.allow_invisible_and_masked,
            self.retention_years,
            self.history_months,
        )

    async def check(self, rtype: str, rid: str, action: str, session: Session | None = None) -> None:
        """403 unless the current version of ``rtype/rid`` is within the access for ``action``."""
        filt = self.access.require(rtype, action)
        if filt is not None and not await self.repo.exists(rtype, rid, filt, session):
            raise Forbidden(f"{rtype}/{rid} is outside what the access token allows", code="forbidden")

    # -- reads -----------------------------------------------------------------------------------

    async def read(self, rtype: str, rid: str, session: Session | None = None) -> Result:
        check_type(rtype)
        check_id(rid)
        self.access.require(rtype, READ)
        rec = await self.repo.current(rtype, rid, session)
        if rec is None:
            raise NotFound(f"{rtype}/{rid} does not exist")
        await self.check(rtype, rid, READ, session)
        if rec.deleted:
            raise Gone(f"{rtype}/{rid} was deleted", headers={"ETag": f'W/"{rec.version}"'})
        await self._trace("read", rec)
        return Result(200, rec.resource, rec)

    async def vread(self, rtype: str, rid: str, vid: str, session: Session | None = None) -> Result:
        check_type(rtype)
        check_id(rid)
        self.access.require(rtype, READ)
        if not vid.isdigit():
            raise NotFound(f"version '{vid}' of {rtype}/{rid} does not exist")
        rec = await self.repo.version(rtype, rid, int(vid), session)
        if rec is None:
            raise NotFound(f"version {vid} of {rtype}/{rid} does not exist")
        await self.check(rtype, rid, READ, session)
        past = self.access.history_filter([rtype])
        key = f"{rtype}/{rid}/{rec.version}"
        if past is not None and not await self.repo.exists(HISTORY, key, past, session):
            raise Forbidden(f"this version of {rtype}/{rid} is outside what the access token allows")
        if rec.deleted:
            raise Gone(f"version {vid} of {rtype}/{rid} is a deletion")
        await self._trace("vread", rec)
        return Result(200, rec.resource, rec)

    async def _trace(self, interaction: str, rec: Record) -> None:
        if self.access.audit is not None and rec.resource is not None:
            patients = patient_compartments(rec.rtype, rec.id, rec.resource)
            await self.access.audit.record(interaction, patients, [f"{rec.rtype}/{rec.id}"])

    async def search_ids(
        self, rtype: str, criteria: Sequence[tuple[str, str]], session: Session | None, limit: int = 2
    ) -> list[Record]:
        """Up to ``limit`` live resources matching conditional criteria (unknown parameters are a 400)."""
        req = parse_search(rtype, criteria, default_count=limit, max_count=limit, strict=True)
        filt = await self.engine.filter_for(req, self.access.restrict, session)
        return await self.repo.find(rtype, filt, limit, session, choose_lead(rtype, filt))

    # -- writes ----------------------------------------------------------------------------------

    async def _in_tx(self, session: Session | None, fn: Any) -> Any:
        if session is not None:
            try:
                return await fn(session)
            except VersionConflict as exc:
                raise Conflict(str(exc)) from exc
        return await self.repo.in_transaction(fn)

    async def _store(
        self, rtype: str, rid: str, resource: Json | None, op: str, current: Record | None, session: Session
    ) -> Record:
        if rtype == "AuditEvent":
            # Traces are the server's own record of who did what: written only by the server.
            raise MethodNotAllowed(
                "AuditEvent resources are read-only: the server writes them", headers={"Allow": "GET"}
            )
        version = current.version + 1 if current else 1
        was_in = patient_compartments(rtype, rid, current.resource) if current and current.resource else None
        labels, citing = None, None
        if rtype == "Binary" and resource is not None:
            citing = await self.repo.documents_citing_binary(rid, session)
            labels = inherited(citing[0]) if citing else {}
        new = new_version(rtype, rid, resource, op, version, now_ms(), was_in, labels)
        if rtype == "DocumentReference" and new.resource is not None:
            problem = check_visibility(new.labels, self.allow_invisible_and_masked)
            if problem:
                raise Unprocessable(problem, expression="DocumentReference.meta.security")
            if self.access.policy is not None:
                self.access.policy.check_document_change(current.resource if current else None, new.resource)
        if citing:
            new = dataclasses.replace(new, compartments=citing[1])
        await self.repo.put(new, current.version if current else None, session)
        before = current.resource if current else None
        await bump(
            self.repo.db,
            changed_inputs(rtype, [policy_labels(rtype, before or {}), new.labels], [before, new.resource]),
            session,
        )
        # The DMP rules (INS, one DMP per INS, channel, closed DMPs) see every write path here.
        await lifecycle.on_write(self, current, new, session)
        if rtype == "DocumentReference" and resource is not None:
            await self.repo.label_binaries(
                new.labels.get("bin", []), inherited(new.labels), new.compartments, session
            )
        if resource is not None:
            # What was written must be within the caller's access too (a patient-scoped app cannot
            # move a resource to another patient); failing here aborts the transaction.
            await self.check(rtype, rid, CREATE if op == "create" else UPDATE, session)
        if self.access.audit is not None:
            await self.access.audit.record(op, new.compartments, [f"{rtype}/{rid}"], session=session)
        return Record(rtype, rid, version, new.last_updated, new.resource is None, new.resource, op)

    async def create_many(self, resources: list[Json]) -> list[Record]:
        """Create many resources at once (imports, demo data, benchmarks): each validated and indexed
        exactly like a single create, all stored in one transaction, server-assigned ids."""
        now = now_ms()
        versions = []
        for body in resources:
            rtype = resource_type_of(body)
            versions.append(new_version(rtype, new_id(), validate_resource(body, rtype), "create", 1, now))

        async def run(s: Session) -> None:
            await self.repo.put_many(versions, s)
            changed = {k for v in versions for k in changed_inputs(v.rtype, [v.labels], [v.resource])}
            await bump(self.repo.db, changed, s)
            await lifecycle.on_create_many(self, versions, s)
            for v in versions:
                if v.rtype == "DocumentReference":
                    await self.repo.label_binaries(
                        v.labels.get("bin", []), inherited(v.labels), v.compartments, s
                    )

        await self.repo.in_transaction(run)
        return [Record(v.rtype, v.id, 1, now, False, v.resource, "create") for v in versions]

    async def create(
        self,
        rtype: str,
        body: Any,
        if_none_exist: str | None = None,
        session: Session | None = None,
        rid: str | None = None,
    ) -> Result:
        """Create with a server-assigned id (``rid`` is for transaction bundles that fixed it already)."""
        check_type(rtype)
        self.access.require(rtype, CREATE)
        resource = validate_resource(body, rtype)
        criteria = parse_criteria(if_none_exist) if if_none_exist is not None else None

        async def run(s: Session) -> Result:
            if criteria is not None:
                found = await self.search_ids(rtype, criteria, s)
                if len(found) > 1:
                    raise PreconditionFailed(
                        f"If-None-Exist matches {len(found)} {rtype} resources", code="duplicate"
                    )
                if found:
                    return Result(200, found[0].resource, found[0])
            rec = await self._store(rtype, rid or new_id(), resource, "create", None, s)
            return Result(201, rec.resource, rec, location=True)

        result: Result = await self._in_tx(session, run)
        return result

    async def update(
        self,
        rtype: str,
        rid: str,
        body: Any,
        if_match: str | None = None,
        session: Session | None = None,
        if_none_match: str | None = None,
    ) -> Result:
        """Update (or create with the client's id); ``If-Match`` guards against lost updates."""
        check_type(rtype)
        check_id(rid)
        if not self.access.allows(rtype, CREATE):
            self.access.require(rtype, UPDATE)
        resource = validate_resource(body, rtype)
        body_id = resource.get("id")
        if body_id is None:
            raise BadRequest("the resource has no id; an update needs the id of the URL", expression="id")
        if body_id != rid:
            raise BadRequest(f"the resource id '{body_id}' differs from the URL id '{rid}'", expression="id")
        expected = parse_etag(if_match) if if_match else None
        create_only = if_none_match is not None and if_none_match.strip() == "*"

        async def run(s: Session) -> Result:
            cur = await self.repo.current(rtype, rid, s)
            live = cur is not None and not cur.deleted
            if expected is not None and (not live or cur is None or cur.version != expected):
                have = f"version {cur.version}" if live and cur else "no current version"
                raise PreconditionFailed(
                    f"If-Match expects version {expected} of {rtype}/{rid}, found {have}"
                )
            if create_only and live:
                raise PreconditionFailed(f"{rtype}/{rid} exists and If-None-Match is *")
            if live:
                await self.check(rtype, rid, UPDATE, s)
            else:
                self.access.require(rtype, CREATE)
            rec = await self._store(rtype, rid, resource, "update" if live else "create", cur, s)
            return Result(200 if live else 201, rec.resource, rec, location=not live)

        result: Result = await self._in_tx(session, run)
        return result

    async def conditional_update(
        self, rtype: str, query: str, body: Any, if_match: str | None = None, session: Session | None = None
    ) -> Result:
        """``PUT [type]?criteria``: update the one match, create when none, 412 when several."""
        check_type(rtype)
        criteria = parse_criteria(query)
        found = await self.search_ids(rtype, criteria, session)
        if len(found) > 1:
            raise PreconditionFailed(
                f"the criteria match {len(found)} {rtype} resources", code="multiple-matches"
            )
        if isinstance(body, dict) and found:
            body_id = body.get("id")
            if body_id is not None and body_id != found[0].id:
                raise BadRequest(
                    f"the resource id '{body_id}' differs from the matched '{found[0].id}'", expression="id"
                )
            body = {**body, "id": found[0].id}
            return await self.update(rtype, found[0].id, body, if_match, session)
        if isinstance(body, dict) and body.get("id"):
            return await self.update(rtype, str(body["id"]), body, if_match, session)
        return await self.create(rtype, body, None, session)

    async def patch(
        self,
        rtype: str,
        rid: str,
        operations: Any,
        if_match: str | None = None,
        session: Session | None = None,
    ) -> Result:
        """Apply a JSON Patch to the current version and store the (validated) result."""
        check_type(rtype)
        check_id(rid)
        self.access.require(rtype, UPDATE)
        if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
            raise BadRequest("a JSON Patch body must be an array of operations", code="structure")
        try:
            patch = jsonpatch.JsonPatch(operations)
        except (jsonpatch.InvalidJsonPatch, TypeError) as exc:
            raise BadRequest(f"invalid JSON Patch: {exc}", code="structure") from exc
        expected = parse_etag(if_match) if if_match else None

        async def run(s: Session) -> Result:
            cur = await self.repo.current(rtype, rid, s)
            if cur is None or cur.deleted or cur.resource is None:
                raise (Gone if cur else NotFound)(f"{rtype}/{rid} does not exist")
            await self.check(rtype, rid, UPDATE, s)
            if expected is not None and cur.version != expected:
                raise PreconditionFailed(f"If-Match expects version {expected}, found {cur.version}")
            try:
                patched = patch.apply(copy.deepcopy(cur.resource))
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise Unprocessable(f"the patch cannot be applied: {exc}") from exc
            if (
                not isinstance(patched, dict)
                or patched.get("id") != rid
                or patched.get("resourceType") != rtype
            ):
                raise Unprocessable("a patch may not change the resource's type or id", expression="id")
            resource = validate_resource(patched, rtype)
            rec = await self._store(rtype, rid, resource, "update", cur, s)
            return Result(200, rec.resource, rec)

        result: Result = await self._in_tx(session, run)
        return result

    async def delete(
        self, rtype: str, rid: str, session: Session | None = None, if_match: str | None = None
    ) -> Result:
        """Delete: a tombstone version; deleting a deleted resource changes nothing."""
        check_type(rtype)
        check_id(rid)
        self.access.require(rtype, DELETE)
        expected = parse_etag(if_match) if if_match else None

        async def run(s: Session) -> Result:
            cur = await self.repo.current(rtype, rid, s)
            if cur is None:
                raise NotFound(f"{rtype}/{rid} does not exist")
            await self.check(rtype, rid, DELETE, s)
            if expected is not None and (cur.deleted or cur.version != expected):
                raise PreconditionFailed(f"If-Match expects version {expected}, found {cur.version}")
            if cur.deleted:
                return Result(204, None, cur)
            rec = await self._store(rtype, rid, None, "delete", cur, s)
            return Result(204, None, rec)

        result: Result = await self._in_tx(session, run)
        return result

    async def conditional_delete(self, rtype: str, query: str, session: Session | None = None) -> Result:
        """``DELETE [type]?criteria``: delete the one match; no match is success; several is 412."""
        check_type(rtype)
        found = await self.search_ids(rtype, parse_criteria(query), session)
        if len(found) > 1:
            raise PreconditionFailed(
                f"the criteria match {len(found)} {rtype} resources", code="multiple-matches"
            )
        if not found:
            return Result(204)
        return await self.delete(rtype, found[0].id, session)
