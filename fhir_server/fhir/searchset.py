"""Search results as a ``searchset`` Bundle: match and include entries, total, self/next/previous links."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fhir_server.fhir.elements import select_elements, summarize
from fhir_server.fhir.rest import check_id, check_type
from fhir_server.search.compiler import Restrict, no_restriction
from fhir_server.search.engine import SearchEngine, SearchResult
from fhir_server.search.request import SearchRequest, parse_search
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
    restrict: Restrict = no_restriction,
    session: Session | None = None,
) -> Json:
    """Run a type search (or a compartment search when ``compartment`` names a Patient id)."""
    check_type(rtype)
    if compartment is not None:
        check_id(compartment)
    req = parse_search(
        rtype, params, default_count=options.default_count, max_count=options.max_count, strict=options.strict
    )
    result = await engine.search(req, restrict, session, compartment)
    path = f"Patient/{compartment}/{rtype}" if compartment is not None else rtype
    return render_searchset(engine.base, path, req, result)
