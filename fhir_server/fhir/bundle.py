"""``batch`` and ``transaction`` Bundles posted to the base URL.

A transaction is all-or-nothing: its entries run in one MongoDB multi-document transaction, in the
spec's order (DELETE, POST, PUT/PATCH, GET), after ``urn:uuid:`` fullUrls and conditional references
are resolved everywhere in the bundle. The first failing entry aborts it and its OperationOutcome is the
response. A batch runs each entry on its own and reports each entry's outcome.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fhir_server.auth.access import Access
from fhir_server.auth.scopes import READ
from fhir_server.fhir.codec import parse_json
from fhir_server.fhir.dates import instant
from fhir_server.fhir.errors import BadRequest, FhirError, NotFound, PreconditionFailed
from fhir_server.fhir.history import history_bundle
from fhir_server.fhir.rest import ResourceService, Result, body_for, check_type, new_id, parse_criteria
from fhir_server.fhir.searchset import SearchOptions, search_bundle
from fhir_server.storage.repository import Session

Json = dict[str, Any]
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content", 304: "304 Not Modified"}


@dataclass
class Entry:
    """One parsed request entry."""

    index: int
    method: str
    path: str
    query: str
    full_url: str | None
    resource: Any
    if_match: str | None
    if_none_exist: str | None
    if_none_match: str | None

    @property
    def rtype(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


class BundleProcessor:
    """Runs batch and transaction Bundles through the same interactions as single requests."""

    def __init__(self, service: ResourceService, base: str, options: SearchOptions, max_entries: int) -> None:
        self.service = service
        self.base = base
        self.options = options
        self.page_size = (options.default_count, options.max_count)
        self.max_entries = max_entries

    def bound(self, access: Access) -> BundleProcessor:
        """This processor acting for a caller with ``access`` (every entry is checked against it)."""
        return BundleProcessor(self.service.bound(access), self.base, self.options, self.max_entries)

    def _parse(self, bundle: Any) -> tuple[str, list[Entry]]:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise BadRequest("the base URL accepts only a Bundle", expression="resourceType")
        btype = bundle.get("type")
        if btype not in {"batch", "transaction"}:
            raise BadRequest(
                f"Bundle.type must be batch or transaction, not '{btype}'", expression="Bundle.type"
            )
        raw = bundle.get("entry") or []
        if not isinstance(raw, list):
            raise BadRequest("Bundle.entry must be an array", expression="Bundle.entry")
        if len(raw) > self.max_entries:
            raise BadRequest(
                f"the Bundle has {len(raw)} entries; at most {self.max_entries} are accepted",
                code="too-costly",
                expression="Bundle.entry",
            )
        entries = []
        for i, e in enumerate(raw):
            req = e.get("request") if isinstance(e, dict) else None
            where = f"Bundle.entry[{i}].request"
            if not isinstance(req, dict) or not isinstance(req.get("method"), str) or not req.get("url"):
                raise BadRequest(f"{where} needs a method and a url", expression=where)
            method = req["method"].upper()
            if method not in _ORDER:
                raise BadRequest(f"{where}.method '{method}' is not supported", expression=f"{where}.method")
            url = str(req["url"])
            if url.startswith(self.base + "/"):
                url = url[len(self.base) + 1 :]
            parts = urlsplit(url)
            if parts.scheme or parts.netloc:
                raise BadRequest(f"{where}.url '{url}' is not on this server", expression=f"{where}.url")
            entries.append(
                Entry(
                    i,
                    method,
                    parts.path.strip("/"),
                    parts.query,
                    e.get("fullUrl"),
                    e.get("resource"),
                    req.get("ifMatch"),
                    req.get("ifNoneExist"),
                    req.get("ifNoneMatch"),
                )
            )
        return btype, entries

    async def process(self, bundle: Any, preference: str = "representation") -> Json:
        """The response Bundle for a batch or transaction; ``preference`` is ``Prefer: return=``."""
        btype, entries = self._parse(bundle)
        if btype == "transaction":
            return await self._transaction(entries, preference)
        return await self._batch(entries, preference)

    # -- batch -----------------------------------------------------------------------------------

    async def _batch(self, entries: list[Entry], preference: str) -> Json:
        out = []
        for e in entries:
            try:
                result = await self._dispatch(e, None)
                out.append(self._response_entry(e, result, preference))
            except FhirError as exc:
                out.append({"response": {"status": str(exc.status), "outcome": exc.outcome()}})
        return {"resourceType": "Bundle", "type": "batch-response", **({"entry": out} if out else {})}

    # -- transaction -----------------------------------------------------------------------------

    async def _transaction(self, entries: list[Entry], preference: str) -> Json:
        seen: set[str] = set()
        for e in entries:
            if e.method in {"PUT", "PATCH", "DELETE"} and not e.query:
                if e.path in seen:
                    raise BadRequest(
                        f"{e.where}: {e.path} appears twice in the transaction", expression=e.where
                    )
                seen.add(e.path)
            if e.full_url and e.full_url in seen:
                raise BadRequest(f"{e.where}: fullUrl {e.full_url} appears twice", expression=e.where)
            if e.full_url:
                seen.add(e.full_url)

        async def run(session: Session) -> list[Result]:
            work = [copy.copy(e) for e in entries]
            ids = await self._resolve_identities(work, session)
            for e in work:
                if e.resource is not None:
                    e.resource = await self._rewrite_refs(e, e.resource, ids, session)
            results: dict[int, Result] = {}
            for e in sorted(work, key=lambda x: (_ORDER[x.method], x.index)):
                try:
                    results[e.index] = await self._dispatch(e, session, ids.get(e.full_url or ""))
                except FhirError as exc:
                    exc.issues = [
                        i
                        if i.diagnostics.startswith("Bundle.entry")
                        else replace(i, diagnostics=f"{e.where}: {i.diagnostics}")
                        for i in exc.issues
                    ]
                    raise
            return [results[i] for i in range(len(work))]

        results = await self.service.repo.in_transaction(run)
        out = [self._response_entry(e, r, preference) for e, r in zip(entries, results, strict=True)]
        return {"resourceType": "Bundle", "type": "transaction-response", **({"entry": out} if out else {})}

    async def _resolve_identities(self, entries: list[Entry], session: Session) -> dict[str, str]:
        """Map each entry's fullUrl to the ``Type/id`` it will have once the transaction is done."""
        ids: dict[str, str] = {}
        for e in entries:
            if e.method == "POST" and e.full_url:
                check_type(e.rtype)
                target = None
                if e.if_none_exist:
                    found = await self.service.search_ids(e.rtype, parse_criteria(e.if_none_exist), session)
                    if len(found) > 1:
                        raise PreconditionFailed(f"{e.where}: ifNoneExist matches {len(found)} resources")
                    target = found[0].id if found else None
                ids[e.full_url] = f"{e.rtype}/{target or new_id()}"
            elif e.method == "PUT" and e.full_url:
                if e.query:
                    found = await self.service.search_ids(e.path, parse_criteria(e.query), session)
                    if len(found) > 1:
                        raise PreconditionFailed(f"{e.where}: the criteria match {len(found)} resources")
                    ids[e.full_url] = f"{e.path}/{found[0].id if found else new_id()}"
                else:
                    ids[e.full_url] = e.path
        return ids

    async def _rewrite_refs(self, e: Entry, value: Any, ids: dict[str, str], session: Session) -> Any:
        """Replace fullUrl and conditional references with the resolved ``Type/id``."""
        if isinstance(value, list):
            return [await self._rewrite_refs(e, v, ids, session) for v in value]
        if not isinstance(value, dict):
            return value
        out = {}
        for k, v in value.items():
            if k == "reference" and isinstance(v, str):
                out[k] = await self._resolve_ref(e, v, ids, session)
            else:
                out[k] = await self._rewrite_refs(e, v, ids, session)
        return out

    async def _resolve_ref(self, e: Entry, ref: str, ids: dict[str, str], session: Session) -> str:
        if ref in ids:
            return ids[ref]
        if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
            raise NotFound(f"{e.where}: reference {ref} names no entry of the transaction")
        if "?" in ref and "/" not in ref.split("?", 1)[0]:
            rtype, query = ref.split("?", 1)
            check_type(rtype)
            found = await self.service.search_ids(rtype, parse_criteria(query), session)
            if len(found) != 1:
                raise PreconditionFailed(
                    f"{e.where}: conditional reference {ref} matches {len(found)} resources, not exactly one"
                )
            return f"{rtype}/{found[0].id}"
        return ref

    # -- shared ----------------------------------------------------------------------------------

    async def _dispatch(self, e: Entry, session: Session | None, assigned: str | None = None) -> Result:
        segments = e.path.split("/") if e.path else []
        svc = self.service
        if e.method == "POST" and len(segments) == 1:
            rid = assigned.split("/", 1)[1] if assigned else None
            return await svc.create(e.rtype, e.resource, e.if_none_exist, session, rid=rid)
        if e.method == "PUT" and len(segments) == 1 and e.query:
            body = e.resource
            if assigned and isinstance(body, dict):
                body = {**body, "id": assigned.split("/", 1)[1]}
            return await svc.conditional_update(e.rtype, e.query, body, e.if_match, session)
        if e.method == "PUT" and len(segments) == 2:
            return await svc.update(e.rtype, segments[1], e.resource, e.if_match, session, e.if_none_match)
        if e.method == "PATCH" and len(segments) == 2:
            return await svc.patch(e.rtype, segments[1], _patch_body(e), e.if_match, session)
        if e.method == "DELETE" and len(segments) == 2:
            return await svc.delete(e.rtype, segments[1], session, e.if_match)
        if e.method == "DELETE" and len(segments) == 1 and e.query:
            return await svc.conditional_delete(e.rtype, e.query, session)
        if e.method in {"GET", "HEAD"}:
            return await self._get(e, segments, session)
        raise BadRequest(f"{e.where}: {e.method} {e.path} is not a supported interaction", expression=e.where)

    async def _get(self, e: Entry, segments: list[str], session: Session | None) -> Result:
        params = parse_qsl(e.query, keep_blank_values=True)
        if len(segments) == 1:
            check_type(e.rtype)
            return Result(
                200,
                await search_bundle(
                    self.service.engine,
                    e.rtype,
                    params,
                    self.options,
                    access=self.service.access,
                    session=session,
                ),
            )
        if len(segments) == 2:
            return await self.service.read(e.rtype, segments[1], session)
        if len(segments) == 3 and segments[2] == "_history":
            check_type(e.rtype)
            await self.service.check(e.rtype, segments[1], READ, session)
            return Result(
                200,
                await history_bundle(
                    self.service.repo,
                    self.base,
                    e.path,
                    params,
                    e.rtype,
                    segments[1],
                    self.page_size,
                    self.service.access,
                ),
            )
        if len(segments) == 4 and segments[2] == "_history":
            return await self.service.vread(e.rtype, segments[1], segments[3], session)
        raise NotFound(f"{e.where}: GET {e.path} is not a supported interaction")

    def _response_entry(self, e: Entry, r: Result, preference: str) -> Json:
        response: Json = {"status": _STATUS_TEXT.get(r.status, str(r.status))}
        entry: Json = {}
        if r.record is not None:
            entry["fullUrl"] = f"{self.base}/{r.record.rtype}/{r.record.id}"
            if r.location:
                response["location"] = f"{r.record.rtype}/{r.record.id}/_history/{r.record.version}"
            response["etag"] = f'W/"{r.record.version}"'
            response["lastModified"] = instant(r.record.last_updated)
        body = body_for(r, preference) if e.method not in {"GET", "HEAD"} else r.resource
        if body is not None:
            if body.get("resourceType") == "OperationOutcome" and e.method not in {"GET", "HEAD"}:
                response["outcome"] = body
            else:
                entry["resource"] = body
        entry["response"] = response
        return entry


def _patch_body(e: Entry) -> Any:
    """A PATCH entry carries its JSON Patch as a Binary (base64) per the FHIR spec."""
    res = e.resource
    if isinstance(res, dict) and res.get("resourceType") == "Binary":
        try:
            return parse_json(base64.b64decode(res.get("data", "")))
        except ValueError as exc:
            raise BadRequest(
                f"{e.where}: the PATCH Binary does not hold a JSON Patch", expression=f"{e.where}.resource"
            ) from exc
    raise BadRequest(
        f"{e.where}: a PATCH entry needs a Binary resource holding a JSON Patch",
        expression=f"{e.where}.resource",
    )
