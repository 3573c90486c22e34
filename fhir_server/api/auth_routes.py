"""Authorization server routes under ``/fhir`` (discovery, keys, OAuth endpoints), public by design, and
``oidc_root_router`` for the OpenID discovery document at the host root.

OAuth endpoints answer OAuth JSON (``{"error", "error_description"}``) with the RFC statuses, the
browser steps answer HTML; none of them answers an OperationOutcome. The logic lives in
:mod:`fhir_server.auth`; these handlers read the request and shape the response.
"""

from __future__ import annotations

from typing import Any

import orjson
from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.http import json_response
from fhir_server.auth.authorize import COOKIE
from fhir_server.auth.claims import patient_exists, userinfo
from fhir_server.auth.keys import ALGORITHM
from fhir_server.auth.server import FormRequest, parse_form
from fhir_server.auth.setup import Auth
from fhir_server.auth.smart import openid_configuration, smart_configuration
from fhir_server.auth.tokens import InvalidToken

auth_router = APIRouter()
oidc_root_router = APIRouter()

_FORM = "application/x-www-form-urlencoded"
_MAX_FORM_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The SMART style document apps may follow to look at home in the portal.
_STYLE = {
    "color_background": "#f5f7fa",
    "color_error": "#a00000",
    "color_highlight": "#005ea5",
    "color_modal_backdrop": "",
    "color_success": "#0a7d32",
    "color_text": "#222222",
    "dim_border_radius": "4px",
    "dim_font_size": "16px",
    "dim_spacing_size": "16px",
    "font_family_body": "sans-serif",
    "font_family_heading": "sans-serif",
}


def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return _json({"error": error, "error_description": description}, status, _NO_STORE)


def _result(status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
    """An Authlib ``(status, body, headers)`` as a response."""
    out = {k: v for k, v in headers if k.lower() != "content-type"}
    if body == "" or body is None:
        return Response(status_code=status, headers=out)
    return _json(body, status, out)


async def _form(request: Request) -> list[tuple[str, str]] | None:
    """The pairs of a urlencoded body, or None when the body is not one (or is too large)."""
    if request.headers.get("content-type", "").split(";", 1)[0].strip().lower() != _FORM:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return None
    return parse_form(bytes(body))


def _oauth_request(request: Request, pairs: list[tuple[str, str]]) -> FormRequest:
    return FormRequest(request.method, str(request.url), request.headers, pairs)


# Discovery --------------------------------------------------------------------------------------------


@auth_router.get("/.well-known/smart-configuration")
async def smart_config(request: Request) -> Response:
    settings = _auth(request).settings
    return _json(smart_configuration(settings.fhir_base, settings.token_issuer))


@auth_router.get("/.well-known/openid-configuration")
@oidc_root_router.get("/.well-known/openid-configuration")
async def openid_config(request: Request) -> Response:
    settings = _auth(request).settings
    return _json(openid_configuration(settings.fhir_base, settings.token_issuer, ALGORITHM))


@auth_router.get("/auth/jwks")
async def jwks(request: Request) -> Response:
    return json_response(request, _auth(request).keys.jwks())


@auth_router.get("/auth/smart-style.json")
async def smart_style(request: Request) -> Response:
    return _json(_STYLE)


# Browser steps ----------------------------------------------------------------------------------------


@auth_router.api_route("/auth/authorize", methods=["GET", "POST"])
async def authorize(request: Request) -> Response:
    flow = _auth(request).flow
    if request.method == "POST":
        pairs = await _form(request)
        if pairs is None:
            return _oauth_error("invalid_request", f"POST the authorization request as {_FORM}.")
    else:
        pairs = list(request.query_params.multi_items())
    return await flow.start(pairs, request.cookies.get(COOKIE))


@auth_router.post("/auth/login")
async def login(request: Request) -> Response:
    pairs = await _form(request) or []
    return await _auth(request).flow.login(dict(pairs), request.cookies.get(COOKIE))


@auth_router.post("/auth/approve")
async def approve(request: Request) -> Response:
    pairs = await _form(request) or []
    return await _auth(request).flow.approve(dict(pairs), request.cookies.get(COOKIE))


@auth_router.get("/auth/upstream/login")
async def upstream_login(request: Request) -> Response:
    rid = request.query_params.get("rid", "")
    return await _auth(request).flow.upstream_start(rid, request.cookies.get(COOKIE))


@auth_router.get("/auth/upstream/callback")
async def upstream_callback(request: Request) -> Response:
    params = dict(request.query_params)
    return await _auth(request).flow.upstream_callback(params, request.cookies.get(COOKIE))


# OAuth endpoints --------------------------------------------------------------------------------------


async def _endpoint(request: Request, run: str) -> Response:
    pairs = await _form(request)
    if pairs is None:
        return _oauth_error("invalid_request", f"Send the parameters as {_FORM} (at most 64 KiB).")
    server = _auth(request).server
    oauth_request = _oauth_request(request, pairs)
    if run == "token":
        status, body, headers = await server.call(server.create_token_response, oauth_request)
    else:
        status, body, headers = await server.call(server.create_endpoint_response, run, oauth_request)
    return _result(status, body, headers)


@auth_router.post("/auth/token")
async def token(request: Request) -> Response:
    return await _endpoint(request, "token")


@auth_router.post("/auth/introspect")
async def introspect(request: Request) -> Response:
    return await _endpoint(request, "introspection")


@auth_router.post("/auth/revoke")
async def revoke(request: Request) -> Response:
    return await _endpoint(request, "revocation")


@auth_router.post("/auth/launch")
async def launch(request: Request) -> Response:
    """Create an EHR launch context; the caller authenticates as a confidential client (HTTP Basic)
    registered with the ``launch`` scope. Body: ``{"patient": id, "encounter"?: id, "client_id"?: app}``."""
    auth = _auth(request)
    server = auth.server
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    caller_request = _oauth_request(request, [])
    try:
        caller = await server.call(
            server.authenticate_client, caller_request, ["client_secret_basic"], "launch"
        )
    except OAuth2Error as error:
        return _result(*error())
    if "launch" not in caller.scope.split():
        return _oauth_error("unauthorized_client", "This client may not create launch contexts.", 403)
    if not isinstance(body, dict) or not isinstance(body.get("patient"), str):
        return _oauth_error("invalid_request", 'Send {"patient": "<id>"} as JSON.')
    app_id = body.get("client_id", caller.client_id)
    encounter = body.get("encounter")
    if not isinstance(app_id, str) or await server.clients.get(app_id) is None:
        return _oauth_error("invalid_request", "Unknown client_id.")
    if encounter is not None and not isinstance(encounter, str):
        return _oauth_error("invalid_request", "encounter must be an id.")
    if not await patient_exists(auth.db, body["patient"]):
        return _oauth_error("invalid_request", "Unknown patient.")
    launch_id = await server.store.create_launch(app_id, body["patient"], encounter)
    return _json({"launch": launch_id}, 201, _NO_STORE)


@auth_router.api_route("/auth/userinfo", methods=["GET", "POST"])
async def user_info(request: Request) -> Response:
    auth = _auth(request)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if scheme.lower() != "bearer" or not value:
        return _with(_oauth_error("invalid_token", "A bearer access token is required.", 401), challenge)
    try:
        claims = await auth.tokens.verify(value.strip())
    except InvalidToken:
        return _with(_oauth_error("invalid_token", "The access token is not valid.", 401), challenge)
    user = await auth.server.users.get(str(claims.get("sub")))
    if "openid" not in str(claims.get("scope", "")).split() or user is None or user.disabled:
        return _oauth_error("insufficient_scope", "The token does not speak for a user (scope openid).", 403)
    return _json(await userinfo(auth.db, user), 200, _NO_STORE)


def _with(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response
