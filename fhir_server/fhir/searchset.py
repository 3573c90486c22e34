"""Type-level search results as a ``searchset`` Bundle (the criteria compiler lives in ``search/``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from fhir_server.fhir.elements import select_elements, summarize
from fhir_server.fhir.history import parse_count
from fhir_server.search.criteria import compile_criteria
from fhir_server.storage.repository import Repository, Session, search_page

Json = dict[str, Any]


async def search_bundle(
    repo: Repository,
    base: str,
    rtype: str,
    params: Sequence[tuple[str, str]],
    page_size: tuple[int, int],
    session: Session | None = None,
) -> Json:
    """Run a type search and render the page as a ``searchset`` Bundle with paging links."""
    values = dict(params)
    count = parse_count(values.get("_count"), *page_size)
    query = compile_criteria(rtype, params)
    page = await search_page(
        repo, rtype, query, count, values.get("_cursor"), values.get("_total") != "none", session
    )
    applied = [(k, v) for k, v in params if k != "_cursor"]
    url = f"{base}/{rtype}"
    links = [{"relation": "self", "url": url + ("?" + urlencode(list(params)) if params else "")}]
    if page.more and page.records:
        links.append(
            {"relation": "next", "url": url + "?" + urlencode([*applied, ("_cursor", page.records[-1].id)])}
        )
    bundle: Json = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    summary = values.get("_summary")
    elements = values.get("_elements")
    if summary == "count":
        return bundle
    entries = []
    for rec in page.records:
        res = rec.resource or {}
        if summary:
            res = summarize(res, summary)
        elif elements:
            res = select_elements(res, elements.split(","))
        entries.append({"fullUrl": f"{base}/{rtype}/{rec.id}", "resource": res, "search": {"mode": "match"}})
    if entries:
        bundle["entry"] = entries
    return bundle
