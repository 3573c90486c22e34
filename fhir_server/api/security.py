"""The bearer token of a FHIR request, turned into its :class:`Access` (once per request)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from fhir_server.auth.access import Access
from fhir_server.auth.audit import Audit, Caller
from fhir_server.auth.labels import local_reference
from fhir_server.auth.policy import AccessMode, build_policy, text_claim
from fhir_server.auth.tokens import InvalidToken
from fhir_server.fhir.errors import Unauthorized


def _challenge(realm: str, error: str | None = None, description: str | None = None) -> dict[str, str]:
    """An RFC 6750 ``WWW-Authenticate`` header."""
    parts = [f'realm="{realm}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append('error_description="{}"'.format(description.replace('"', "'")))
    return {"WWW-Authenticate": "Bearer " + ", ".join(parts)}


async def request_access(request: Request) -> Access:
    """What this request may do: from its ``Authorization: Bearer`` token (401 when missing or not
    valid), or everything when the server runs with ``--insecure-no-auth``."""
    cached = getattr(request.state, "access", None)
    if isinstance(cached, Access):
        return cached
    services = request.app.state.services
    settings = services.settings
    if not settings.auth:
        access = Access.full()
        claims: dict[str, Any] = {}
        mode = AccessMode()
    else:
        realm = settings.fhir_base
        header = request.headers.get("authorization")
        if not header:
            raise Unauthorized("this request needs an access token", headers=_challenge(realm))
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "the Authorization header must be 'Bearer <token>'",
                headers=_challenge(realm, "invalid_request", "expected a Bearer token"),
            )
        try:
            claims = await request.app.state.auth.tokens.verify(token)
        except InvalidToken as exc:
            raise Unauthorized(str(exc), headers=_challenge(realm, "invalid_token", str(exc))) from exc
        mode = AccessMode.from_headers(request.headers)
        policy = await build_policy(
            services.repo.db, request.app.state.matrix, claims, mode, settings.fhir_base
        )
        access = await Access.from_claims(claims, services.engine, policy)
    caller = Caller(
        local_reference(claims.get("fhirUser")),
        text_claim(claims.get("client_id")),
        text_claim(claims.get("role")),
        request.client.host if request.client else None,
    )
    access.audit = Audit(request.app.state.audit_trail, caller, mode)
    request.state.access = access
    return access
