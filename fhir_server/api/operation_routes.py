"""Routes of ``$operations`` at system, type and instance level, dispatched on the operation table.

Included before the FHIR router, whose ``/{rtype}`` and ``/{rtype}/{rid}`` would otherwise take
``/$export`` or ``/Patient/$export`` for a type or an id.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.http import json_response, negotiate
from fhir_server.api.security import request_access
from fhir_server.fhir.errors import MethodNotAllowed, NotFound
from fhir_server.fhir.rest import check_id, check_type
from fhir_server.operations.registry import OperationCall
from fhir_server.operations.table import find, find_definition

operation_router = APIRouter()
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def _invoke(request: Request, name: str, rtype: str | None, rid: str | None) -> Response:
    services = request.app.state.services
    if rid is not None:
        check_id(rid)
    op = find(name)
    if op is None or not op.invocable(rtype, rid):
        # An operation may be declared on a type that is not stored (CodeSystem/$lookup); otherwise
        # an unknown type is named as such.
        if rtype is not None:
            check_type(rtype)
        where = "/".join(p for p in (rtype, rid) if p) or "the system"
        raise NotFound(f"there is no operation ${name} on {where}", code="not-supported")
    if request.method not in op.methods:
        raise MethodNotAllowed(
            f"${name} does not accept {request.method}", headers={"Allow": ", ".join(op.methods)}
        )
    access = await request_access(request)
    response = await op.handler(OperationCall(request, services, access, rtype, rid))
    if access.audit is not None and op.audited:
        patients = [rid] if rtype == "Patient" and rid else []
        target = [f"{rtype}/{rid}"] if rtype and rid else []
        await access.audit.record(f"operation:${name}", patients, target, query=str(request.url))
    return response


@operation_router.api_route("/${name}", methods=_METHODS)
async def system_operation(request: Request, name: str) -> Response:
    return await _invoke(request, name, None, None)


@operation_router.api_route("/{rtype}/${name}", methods=_METHODS)
async def type_operation(request: Request, rtype: str, name: str) -> Response:
    return await _invoke(request, name, rtype, None)


@operation_router.api_route("/{rtype}/{rid}/${name}", methods=_METHODS)
async def instance_operation(request: Request, rtype: str, rid: str, name: str) -> Response:
    return await _invoke(request, name, rtype, rid)


@operation_router.get("/OperationDefinition/{oid}")
async def operation_definition(request: Request, oid: str) -> Response:
    """The OperationDefinition of an operation this server defines (public, like the metadata)."""
    negotiate(request)
    resource = find_definition(oid)
    if resource is None:
        raise NotFound(f"OperationDefinition/{oid} is not one of this server's operations")
    return json_response(request, resource)
