"""FHIR REST routes under ``/fhir``: they parse HTTP and render results; the rules live in ``fhir/``."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.http import (
    json_response,
    negotiate,
    patch_media,
    prefer_return,
    read_body,
    result_headers,
    write_response,
)
from fhir_server.api.security import request_access
from fhir_server.auth.scopes import READ, SEARCH
from fhir_server.config import Settings
from fhir_server.fhir.bundle import BundleProcessor
from fhir_server.fhir.capability import capability_statement
from fhir_server.fhir.codec import parse_json
from fhir_server.fhir.elements import select_elements, summarize
from fhir_server.fhir.errors import BadRequest, Forbidden, MethodNotAllowed, NotFound
from fhir_server.fhir.history import history_bundle
from fhir_server.fhir.rest import ResourceService, Result, check_id, check_type
from fhir_server.fhir.searchset import SearchOptions, search_bundle, system_search_bundle
from fhir_server.search.engine import SearchEngine
from fhir_server.search.registry import compartment_params
from fhir_server.storage.repository import Repository

router = APIRouter()
_SUMMARY_MODES = {"true", "false", "text", "data", "count"}


@dataclass
class Services:
    """What the routes need, built once at start-up and kept on ``app.state.services``."""

    settings: Settings
    repo: Repository
    engine: SearchEngine
    resources: ResourceService
    bundles: BundleProcessor

    @property
    def base(self) -> str:
        return self.settings.fhir_base

    @property
    def page_size(self) -> tuple[int, int]:
        return self.settings.default_page_size, self.settings.max_page_size


# Paths below the base that are endpoints, not resource types: other methods on them are a 405.
_RESERVED = {"metadata": "GET", "_history": "GET"}


def _type_level(rtype: str) -> None:
    if rtype in _RESERVED:
        allowed = _RESERVED[rtype]
        raise MethodNotAllowed(f"only {allowed} is allowed on /{rtype}", headers={"Allow": allowed})
    check_type(rtype)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    negotiate(request)
    return services


def _params(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


def _search_options(request: Request, s: Services) -> SearchOptions:
    strict = "handling=strict" in request.headers.get("prefer", "").replace(" ", "").lower()
    return SearchOptions(s.settings.default_page_size, s.settings.max_page_size, strict)


def _shaped(request: Request, resource: dict[str, object]) -> dict[str, object]:
    """Apply ``_summary`` / ``_elements`` to a single resource."""
    summary = request.query_params.get("_summary")
    elements = request.query_params.get("_elements")
    if summary is not None:
        if summary not in _SUMMARY_MODES - {"count"}:
            raise BadRequest(
                f"_summary '{summary}' is not one of true, false, text, data", expression="_summary"
            )
        return summarize(resource, summary)
    if elements:
        return select_elements(resource, [e.strip() for e in elements.split(",") if e.strip()])
    return resource


def _not_modified(request: Request, result: Result) -> bool:
    rec = result.record
    if rec is None:
        return False
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return inm.strip() in {f'W/"{rec.version}"', f'"{rec.version}"'}
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            return rec.last_updated.replace(microsecond=0) <= parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
    return False


def _read_response(request: Request, s: Services, result: Result) -> Response:
    headers = result_headers(result, s.base)
    if _not_modified(request, result):
        return Response(status_code=304, headers=headers)
    return json_response(request, _shaped(request, result.resource or {}), 200, headers)


async def _json_body(request: Request, s: Services) -> object:
    return parse_json(await read_body(request, s.settings.max_body_bytes))


# -- whole-system ----------------------------------------------------------------------------------


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    s = _services(request)
    return json_response(request, capability_statement(s.base))


@router.get("")
@router.get("/")
async def system_search(request: Request) -> Response:
    s = _services(request)
    access = await request_access(request)
    bundle = await system_search_bundle(s.engine, _params(request), _search_options(request, s), access)
    return json_response(request, bundle)


@router.post("")
@router.post("/")
async def batch_or_transaction(request: Request) -> Response:
    s = _services(request)
    bundles = s.bundles.bound(await request_access(request))
    body = await _json_body(request, s)
    return json_response(request, await bundles.process(body, prefer_return(request)))


@router.get("/_history")
async def system_history(request: Request) -> Response:
    s = _services(request)
    access = await request_access(request)
    bundle = await history_bundle(
        s.repo, s.base, "_history", _params(request), None, None, s.page_size, access
    )
    return json_response(request, bundle)


# -- type level ------------------------------------------------------------------------------------


@router.get("/{rtype}")
async def search_type(request: Request, rtype: str) -> Response:
    s = _services(request)
    access = await request_access(request)
    bundle = await search_bundle(
        s.engine, rtype, _params(request), _search_options(request, s), access=access
    )
    return json_response(request, bundle)


@router.post("/{rtype}/_search")
async def search_post(request: Request, rtype: str) -> Response:
    s = _services(request)
    access = await request_access(request)
    check_type(rtype)
    body = await read_body(request, s.settings.max_body_bytes, {"application/x-www-form-urlencoded"})
    params = _params(request) + parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    bundle = await search_bundle(s.engine, rtype, params, _search_options(request, s), access=access)
    return json_response(request, bundle)


@router.post("/{rtype}")
async def create(request: Request, rtype: str) -> Response:
    s = _services(request)
    _type_level(rtype)
    resources = s.resources.bound(await request_access(request))
    body = await _json_body(request, s)
    result = await resources.create(rtype, body, request.headers.get("if-none-exist"))
    return write_response(request, result, s.base)


@router.put("/{rtype}")
async def conditional_update(request: Request, rtype: str) -> Response:
    s = _services(request)
    _type_level(rtype)
    resources = s.resources.bound(await request_access(request))
    body = await _json_body(request, s)
    result = await resources.conditional_update(
        rtype, request.url.query, body, request.headers.get("if-match")
    )
    return write_response(request, result, s.base)


@router.delete("/{rtype}")
async def conditional_delete(request: Request, rtype: str) -> Response:
    s = _services(request)
    _type_level(rtype)
    resources = s.resources.bound(await request_access(request))
    result = await resources.conditional_delete(rtype, request.url.query)
    return write_response(request, result, s.base)


@router.get("/{rtype}/_history")
async def type_history(request: Request, rtype: str) -> Response:
    s = _services(request)
    access = await request_access(request)
    check_type(rtype)
    path = f"{rtype}/_history"
    bundle = await history_bundle(s.repo, s.base, path, _params(request), rtype, None, s.page_size, access)
    return json_response(request, bundle)


# -- instance level --------------------------------------------------------------------------------


@router.get("/{rtype}/{rid}")
async def read(request: Request, rtype: str, rid: str) -> Response:
    s = _services(request)
    resources = s.resources.bound(await request_access(request))
    return _read_response(request, s, await resources.read(rtype, rid))


@router.put("/{rtype}/{rid}")
async def update(request: Request, rtype: str, rid: str) -> Response:
    s = _services(request)
    check_type(rtype)
    check_id(rid)
    resources = s.resources.bound(await request_access(request))
    body = await _json_body(request, s)
    result = await resources.update(
        rtype, rid, body, request.headers.get("if-match"), if_none_match=request.headers.get("if-none-match")
    )
    return write_response(request, result, s.base)


@router.patch("/{rtype}/{rid}")
async def patch(request: Request, rtype: str, rid: str) -> Response:
    s = _services(request)
    check_type(rtype)
    check_id(rid)
    resources = s.resources.bound(await request_access(request))
    ops = parse_json(await read_body(request, s.settings.max_body_bytes, patch_media()))
    result = await resources.patch(rtype, rid, ops, request.headers.get("if-match"))
    return write_response(request, result, s.base)


@router.delete("/{rtype}/{rid}")
async def delete(request: Request, rtype: str, rid: str) -> Response:
    s = _services(request)
    resources = s.resources.bound(await request_access(request))
    result = await resources.delete(rtype, rid, if_match=request.headers.get("if-match"))
    return write_response(request, result, s.base)


@router.get("/{rtype}/{rid}/_history")
async def instance_history(request: Request, rtype: str, rid: str) -> Response:
    s = _services(request)
    access = await request_access(request)
    check_type(rtype)
    check_id(rid)
    await s.resources.bound(access).check(rtype, rid, READ)
    path = f"{rtype}/{rid}/_history"
    bundle = await history_bundle(s.repo, s.base, path, _params(request), rtype, rid, s.page_size, access)
    return json_response(request, bundle)


@router.get("/Patient/{pid}/{rtype}")
async def compartment_search(request: Request, pid: str, rtype: str) -> Response:
    s = _services(request)
    access = await request_access(request)
    if rtype != "Patient" and rtype not in compartment_params():
        raise NotFound(f"{rtype} is not in the Patient compartment")
    if access.patient is not None and pid != access.patient and access.filter(rtype, SEARCH) is not None:
        raise Forbidden(f"the access token is for another patient than Patient/{pid}")
    if access.policy is not None and not access.policy.may_enter(pid):
        raise Forbidden(f"the DMP of Patient/{pid} is not open to this caller (no authorization recorded)")
    bundle = await search_bundle(
        s.engine, rtype, _params(request), _search_options(request, s), compartment=pid, access=access
    )
    return json_response(request, bundle)


@router.get("/{rtype}/{rid}/_history/{vid}")
async def vread(request: Request, rtype: str, rid: str, vid: str) -> Response:
    s = _services(request)
    resources = s.resources.bound(await request_access(request))
    return _read_response(request, s, await resources.vread(rtype, rid, vid))
