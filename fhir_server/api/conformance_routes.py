"""Read-only routes of the conformance resources the server holds as files, not in the database.

``StructureDefinition`` (the DMP profiles of ``profiles/``), ``CodeSystem``, ``ValueSet`` and
``ConceptMap`` (``terminology/``): read (``GET [type]/[id]``) and search (``GET [type]?url=…``, also
``name``, ``status``, ``version``, ``_id``, and ``type`` for StructureDefinition). They change with a
release, not through the API: every other method is a 405. Included before the FHIR router, whose
``/{rtype}`` routes would answer "type not served".
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.http import json_response, negotiate
from fhir_server.api.security import request_access
from fhir_server.fhir.errors import MethodNotAllowed, NotFound
from fhir_server.profiles.registry import default_profiles
from fhir_server.terminology.service import TYPES as TERMINOLOGY_TYPES
from fhir_server.terminology.service import default_terminology

Json = dict[str, Any]
CONFORMANCE_TYPES = ("StructureDefinition", *TERMINOLOGY_TYPES)
_SEARCHABLE = ("url", "name", "status", "version", "type")

conformance_router = APIRouter()


def conformance_resources(rtype: str) -> list[Json]:
    """Every resource of a conformance type, by id."""
    if rtype == "StructureDefinition":
        return default_profiles().definitions()
    return default_terminology().all(rtype)


def _matches(resource: Json, params: list[tuple[str, str]]) -> bool:
    for name, value in params:
        wanted = set(value.split(","))
        if name == "_id" and resource.get("id") not in wanted:
            return False
        if name in _SEARCHABLE and str(resource.get(name, "")).split("|")[0] not in wanted:
            return False
    return True


async def _search(request: Request, rtype: str) -> Response:
    negotiate(request)
    await request_access(request)
    base = request.app.state.services.base
    params = [(k, v) for k, v in request.query_params.multi_items() if k == "_id" or k in _SEARCHABLE]
    found = [r for r in conformance_resources(rtype) if _matches(r, params)]
    query = "&".join(f"{k}={v}" for k, v in params)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": f"{base}/{rtype}" + (f"?{query}" if query else "")}],
        "entry": [
            {"fullUrl": f"{base}/{rtype}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in found
        ],
    }
    if not found:
        del bundle["entry"]
    return json_response(request, bundle)


async def _read(request: Request, rtype: str, rid: str) -> Response:
    negotiate(request)
    await request_access(request)
    found = next((r for r in conformance_resources(rtype) if r.get("id") == rid), None)
    if found is None:
        raise NotFound(f"{rtype}/{rid} does not exist")
    return json_response(request, found)


def _add_routes(rtype: str) -> None:
    async def search(request: Request) -> Response:
        return await _search(request, rtype)

    async def read(request: Request, rid: str) -> Response:
        return await _read(request, rtype, rid)

    async def refuse(request: Request) -> Response:
        raise MethodNotAllowed(
            f"{rtype} resources are read-only here: they are part of the server's release",
            headers={"Allow": "GET"},
        )

    conformance_router.add_api_route(f"/{rtype}", search, methods=["GET"])
    conformance_router.add_api_route(f"/{rtype}/{{rid}}", read, methods=["GET"])
    for path in (f"/{rtype}", f"/{rtype}/{{rid}}"):
        conformance_router.add_api_route(path, refuse, methods=["POST", "PUT", "PATCH", "DELETE"])


for _type in CONFORMANCE_TYPES:
    _add_routes(_type)
