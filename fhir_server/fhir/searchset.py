"""Search results as a ``searchset`` Bundle: match and include entries, total, self/next/previous links."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fhir_server.auth.access import Access
from fhir_server.auth.scopes import SEARCH
from fhir_server.fhir.elements import select_elements, summarize
from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.fhir.rest import check_id, check_type
from fhir_server.search.engine import SearchEngine, SearchResult
from fhir_server.search.registry import supported_params
from fhir_server.search.request import RESULT_PARAMS, SearchRequest, parse_search
from fhir_server.storage.repository import Record, Session

Json = dict[str, Any]


@dataclass(frozen=True)
class SearchOptions:
    """How a search request is to be handled (from settings and the ``Prefer`` header)."""

    default_count: int
    max_count: int
    strict: bool = False


def _shape(resource: Json, req: SearchRequest) -> Json:
    if req.summary and req.summary != "false":
        return summarize(resource, req.summary)
    if req.elements:
        return select_elements(resource, req.elements)
    return resource


def _entry(base: str, rec: Record, mode: str, req: SearchRequest) -> Json:
    return {
        "fullUrl": f"{base}/{rec.rtype}/{rec.id}",
        "resource": _shape(rec.resource or {}, req),
        "search": {"mode": mode},
    }


def render_searchset(base: str, path: str, req: SearchRequest, result: SearchResult) -> Json:
    """The Bundle for one page of results; ``path`` is the search's URL below the base."""
    url = f"{base}/{path}"
    applied = list(req.applied)
    links = [{"relation": "self", "url": url + (f"?{urlencode(applied)}" if applied else "")}]
    if result.next_cursor:
        links.append(
            {"relation": "next", "url": f"{url}?{urlencode([*applied, ('_cursor', result.next_cursor)])}"}
        )
    if result.previous_cursor:
        prev = urlencode([*applied, ("_cursor", result.previous_cursor)])
        links.append({"relation": "previous", "url": f"{url}?{prev}"})
    bundle: Json = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    entries = [_entry(base, r, "match", req) for r in result.matches]
    entries += [_entry(base, r, "include", req) for r in result.included]
    if entries:
        bundle["entry"] = entries
    return bundle


async def search_bundle(
    engine: SearchEngine,
    rtype: str,
    params: Sequence[tuple[str, str]],
    options: SearchOptions,
    *,
    compartment: str | None = None,
    access: Access | None = None,
    session: Session | None = None,
) -> Json:
    """Run a type search (or a compartment search when ``compartment`` names a Patient id) within the
    caller's ``access`` (everything when None)."""
    check_type(rtype)
    access = access or Access.full()
    access.require(rtype, SEARCH)
    if compartment is not None:
        check_id(compartment)
    req = parse_search(
        rtype, params, default_count=options.default_count, max_count=options.max_count, strict=options.strict
    )
    result = await engine.search(req, access.restrict, session, compartment)
    path = f"Patient/{compartment}/{rtype}" if compartment is not None else rtype
    bundle = render_searchset(engine.base, path, req, result)
    if access.audit is not None:
        kind = "search-compartment" if compartment is not None else "search-type"
        await access.audit.returned(kind, [*result.matches, *result.included], _self_link(bundle))
    return bundle


def _self_link(bundle: Json) -> str | None:
    return next((link["url"] for link in bundle.get("link", []) if link.get("relation") == "self"), None)


def split_cursor(token: str | None, types: int) -> tuple[int, str | None]:
    """A cursor over several types, ``<type index>.<cursor within that type>``, split (400 when bad)."""
    if not token:
        return 0, None
    index, _, inner = token.partition(".")
    if not index.isdigit() or int(index) >= types:
        raise BadRequest("the page link is not valid", expression="_cursor")
    return int(index), inner or None


async def system_search_bundle(
    engine: SearchEngine,
    params: Sequence[tuple[str, str]],
    options: SearchOptions,
    access: Access | None = None,
) -> Json:
    """``GET [base]?_type=…&…``: one search over several types, paged type after type (no ``_sort``).
    Without ``_type``, the types the caller may search; a listed type it may not search is a 403."""
    access = access or Access.full()
    restrict = access.restrict
    values = dict(params)
    names = values.get("_type", "")
    types = [t for t in names.split(",") if t] if names else access.searchable(SERVED_TYPES)
    for t in types:
        check_type(t)
        access.require(t, SEARCH)
    if not types:
        access.require("Patient", SEARCH)
    if "_sort" in values:
        raise BadRequest("_sort is not supported on a search across types", expression="_sort")
    criteria = [(k, v) for k, v in params if k not in {"_type", "_cursor"}]
    for name, _ in criteria:
        code = name.split(":", 1)[0].split(".", 1)[0]
        common = code.startswith("_") and all(code in supported_params(t) for t in types)
        if not common and code not in RESULT_PARAMS:
            raise BadRequest(f"'{name}' is not a parameter of every searched type", expression=name)
    start, inner = split_cursor(values.get("_cursor"), len(types))
    first = parse_search(
        types[0], criteria, default_count=options.default_count, max_count=options.max_count, strict=True
    )
    wanted = first.count
    total = 0
    matches: list[Record] = []
    next_cursor = None
    for i, rtype in enumerate(types):
        req = parse_search(
            rtype,
            [*criteria, *([("_cursor", inner)] if inner and i == start else [])],
            default_count=wanted,
            max_count=options.max_count,
            strict=True,
        )
        if i < start or len(matches) >= wanted:
            if req.total != "none":
                total += (await engine.search(replace(req, count=0), restrict)).total or 0
            if len(matches) >= wanted and next_cursor is None:
                next_cursor = f"{i}."
            continue
        result = await engine.search(replace(req, count=wanted - len(matches)), restrict)
        total += result.total or 0
        matches += result.matches
        if result.next_cursor:
            next_cursor = f"{i}.{result.next_cursor}"
    applied = [("_type", names)] if names else []
    applied += list(first.applied)
    link = f"{engine.base}?{urlencode(applied)}" if applied else engine.base
    links = [{"relation": "self", "url": link}]
    if next_cursor:
        links.append(
            {"relation": "next", "url": f"{engine.base}?{urlencode([*applied, ('_cursor', next_cursor)])}"}
        )
    bundle: Json = {"resourceType": "Bundle", "type": "searchset"}
    if first.total != "none":
        bundle["total"] = total
    bundle["link"] = links
    if matches:
        bundle["entry"] = [_entry(engine.base, r, "match", first) for r in matches]
    if access.audit is not None:
        await access.audit.returned("search-system", matches, link)
    return bundle
