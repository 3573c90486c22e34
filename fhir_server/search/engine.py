"""Run a parsed search: filter, sort, keyset paging, totals, ``_include`` / ``_revinclude``.

Paging is keyset, never ``skip``: a page cursor holds the sort values and id of the last (or first)
resource shown, so a page link keeps its place while resources are written, and works until it
expires (``FHIR_PAGE_LINK_TTL``). Sort keys (``srt.<code>``) are scalars stored at write time; a
resource without a value holds its kind's sentinel so comparisons stay within one BSON type.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_server.fhir.errors import BadRequest, Gone
from fhir_server.fhir.registry import is_served
from fhir_server.search.compiler import Compiler, Filter, Lookup, Restrict, no_restriction
from fhir_server.search.plan import choose_lead, cut_compartments
from fhir_server.search.request import Include, SearchRequest
from fhir_server.storage.lead import short_lists
from fhir_server.storage.repository import (
    Record,
    Repository,
    Session,
    count,
    field_values,
    find_page,
    narrow,
)

# Most resources an _include/_revinclude pass adds to one page, and how many :iterate passes run.
MAX_INCLUDED = 1000
MAX_ITERATIONS = 3


@dataclass
class SearchResult:
    """A page of matches, the resources included with them, the total and the paging cursors."""

    matches: list[Record]
    included: list[Record] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    previous_cursor: str | None = None


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$d": int(value.timestamp() * 1000)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "$d" in value:
        return datetime.fromtimestamp(value["$d"] / 1000, UTC)
    return value


def _make_cursor(values: list[Any], backward: bool) -> str:
    payload = {"v": [_encode(v) for v in values], "b": backward, "t": int(time.time())}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _read_cursor(token: str, ttl: int) -> tuple[list[Any], bool]:
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        values, backward, issued = payload["v"], bool(payload["b"]), int(payload["t"])
        if not isinstance(values, list):
            raise TypeError("values")
    except (ValueError, TypeError, KeyError) as exc:
        raise BadRequest("the page link is not valid", expression="_cursor") from exc
    if time.time() - issued > ttl:
        raise Gone("this page link has expired; run the search again", code="expired")
    return [_decode(v) for v in values], backward


def _sort_spec(req: SearchRequest) -> list[tuple[str, int]]:
    spec = [("_id" if code == "_id" else f"srt.{code}", -1 if desc else 1) for code, desc in req.sort]
    if not any(f == "_id" for f, _ in spec):
        spec.append(("_id", 1))
    return spec


def _sort_values(doc: dict[str, Any], spec: list[tuple[str, int]]) -> list[Any]:
    out = []
    for f, _ in spec:
        out.append(doc["_id"] if f == "_id" else (doc.get("srt") or {}).get(f[4:]))
    return out


def _after(spec: list[tuple[str, int]], values: list[Any], backward: bool) -> Filter:
    """Resources strictly after ``values`` in ``spec`` order (before, when going backward)."""
    if len(values) != len(spec):
        raise BadRequest("the page link does not fit this search", expression="_cursor")
    ors = []
    for i, (f, direction) in enumerate(spec):
        forward = direction == 1
        op = "$gt" if forward != backward else "$lt"
        clause = {spec[j][0]: values[j] for j in range(i)}
        clause[f] = {op: values[i]}
        ors.append(clause)
    return {"$or": ors}


def _lookup(repo: Repository, session: Session | None) -> Lookup:
    async def run(rtype: str, filt: Filter, fld: str, limit: int) -> list[Any]:
        return await field_values(repo, rtype, filt, fld, limit, session, choose_lead(rtype, filt))

    return run


def _refs(doc: dict[str, Any], inc: Include) -> list[str]:
    idx = doc.get("idx") or {}
    out = []
    for p in inc.params:
        value = idx.get(p.code)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and "/" in v and not v.startswith(("http:", "https:", "urn:")):
                rtype = v.split("/", 1)[0]
                if is_served(rtype) and (inc.target is None or inc.target == rtype):
                    out.append(v)
    return out


class SearchEngine:
    """Executes searches against the repository, within a caller's restriction."""

    def __init__(self, repo: Repository, base: str, page_ttl: int, max_chain_ids: int = 10_000) -> None:
        self.repo = repo
        self.base = base
        self.page_ttl = page_ttl
        self.max_chain_ids = max_chain_ids

    async def filter_for(
        self,
        req: SearchRequest,
        restrict: Restrict = no_restriction,
        session: Session | None = None,
        compartment: str | None = None,
    ) -> Filter:
        """The complete filter of a search: its clauses, the compartment and the caller's restriction."""
        compiler = Compiler(self.base, _lookup(self.repo, session), restrict, self.max_chain_ids)
        parts = [await compiler.compile(req.clauses), restrict(req.rtype)]
        if compartment is not None:
            parts.append({"comp": compartment})
        parts = [p for p in parts if p]
        if not parts:
            return {}
        return cut_compartments(req.rtype, parts[0] if len(parts) == 1 else {"$and": parts})

    async def search(
        self,
        req: SearchRequest,
        restrict: Restrict = no_restriction,
        session: Session | None = None,
        compartment: str | None = None,
    ) -> SearchResult:
        """One page of ``req``."""
        filt = await self.filter_for(req, restrict, session, compartment)
        lead = choose_lead(req.rtype, filt)
        # Once for the count and the page, which share the lead.
        narrowed, lead = await narrow(self.repo, req.rtype, filt, lead, session)
        filt = dict(narrowed)
        if req.summary == "count" or req.count == 0:
            return SearchResult([], total=await count(self.repo, req.rtype, filt, session, lead))
        spec = _sort_spec(req)
        backward = False
        page_filter = filt
        if req.cursor:
            values, backward = _read_cursor(req.cursor, self.page_ttl)
            after = _after(spec, values, backward)
            page_filter = {"$and": [filt, after]} if filt else after
        query_sort = [(f, -d if backward else d) for f, d in spec]
        want_index = bool(req.includes)
        rows = await find_page(
            self.repo, req.rtype, page_filter, query_sort, req.count + 1, want_index, session, lead
        )
        more = len(rows) > req.count
        rows = rows[: req.count]
        if backward:
            rows.reverse()
        total = None
        if req.total != "none":
            # A first page that holds every match is its own count.
            complete = not req.cursor and not more
            total = len(rows) if complete else await count(self.repo, req.rtype, filt, session, lead)
        result = SearchResult([r for r, _ in rows], total=total)
        if rows:
            has_next = more if not backward else True
            has_previous = bool(req.cursor) if not backward else more
            if has_next:
                result.next_cursor = _make_cursor(_sort_values(rows[-1][1], spec), backward=False)
            if has_previous:
                result.previous_cursor = _make_cursor(_sort_values(rows[0][1], spec), backward=True)
        if req.includes or req.revincludes:
            result.included = await self._includes(req, rows, restrict, session)
        return result

    async def _includes(
        self,
        req: SearchRequest,
        rows: Sequence[tuple[Record, dict[str, Any]]],
        restrict: Restrict,
        session: Session | None,
    ) -> list[Record]:
        seen = {(r.rtype, r.id) for r, _ in rows}
        included: list[Record] = []
        frontier = list(rows)
        for depth in range(MAX_ITERATIONS):
            new: list[tuple[Record, dict[str, Any]]] = []
            for inc in req.includes:
                if depth > 0 and not inc.iterate:
                    continue
                refs = sorted(
                    {ref for rec, doc in frontier if rec.rtype == inc.source for ref in _refs(doc, inc)}
                )
                new.extend(await self._fetch_refs(refs, restrict, session, seen))
            for inc in req.revincludes:
                if depth > 0 and not inc.iterate:
                    continue
                targets = [f"{rec.rtype}/{rec.id}" for rec, _ in frontier]
                if targets:
                    new.extend(await self._fetch_reverse(inc, targets, restrict, session, seen))
            included.extend(r for r, _ in new)
            if len(included) > MAX_INCLUDED:
                raise BadRequest(
                    f"the includes add more than {MAX_INCLUDED} resources to one page; lower _count",
                    code="too-costly",
                    expression="_include",
                )
            if not new or not any(i.iterate for i in (*req.includes, *req.revincludes)):
                break
            frontier = new
        return included

    async def _fetch_refs(
        self, refs: list[str], restrict: Restrict, session: Session | None, seen: set[tuple[str, str]]
    ) -> list[tuple[Record, dict[str, Any]]]:
        by_type: dict[str, list[str]] = {}
        for ref in refs:
            rtype, rid = ref.split("/", 1)
            if (rtype, rid) not in seen:
                by_type.setdefault(rtype, []).append(rid)
        out = []
        for rtype, ids in by_type.items():
            for part in short_lists(ids):
                out += await self._fetch(rtype, {"_id": {"$in": part}}, restrict, session, seen)
        return out

    async def _fetch_reverse(
        self,
        inc: Include,
        targets: list[str],
        restrict: Restrict,
        session: Session | None,
        seen: set[tuple[str, str]],
    ) -> list[tuple[Record, dict[str, Any]]]:
        out = []
        # One query per reference parameter, so that each runs on that parameter's index.
        for p in inc.params:
            for part in short_lists(targets):
                out += await self._fetch(
                    inc.source, {f"idx.{p.code}": {"$in": part}}, restrict, session, seen
                )
        return out

    async def _fetch(
        self,
        rtype: str,
        filt: Filter,
        restrict: Restrict,
        session: Session | None,
        seen: set[tuple[str, str]],
    ) -> list[tuple[Record, dict[str, Any]]]:
        """Matches of ``filt`` within the restriction, each once per search (``seen`` is updated)."""
        extra = restrict(rtype)
        full = cut_compartments(rtype, {"$and": [filt, extra]}) if extra else filt
        rows = await find_page(
            self.repo, rtype, full, [("_id", 1)], MAX_INCLUDED + 1, True, session, choose_lead(rtype, full)
        )
        out = []
        for rec, doc in rows:
            if (rec.rtype, rec.id) not in seen:
                seen.add((rec.rtype, rec.id))
                out.append((rec, doc))
        return out
