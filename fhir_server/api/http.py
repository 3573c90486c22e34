"""HTTP details of FHIR: content negotiation, request bodies, response headers and ``Prefer``."""

from __future__ import annotations

from datetime import UTC
from email.utils import format_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.fhir.codec import dumps
from fhir_server.fhir.errors import FhirError, NotAcceptable, PayloadTooLarge, UnsupportedMedia
from fhir_server.fhir.rest import Result, body_for

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = {FHIR_JSON, "application/json", "json"}
_ACCEPTABLE = {FHIR_JSON, "application/json", "application/*", "*/*", "json", "*"}
_PATCH_TYPES = {"application/json-patch+json"}
HTML = "text/html"
_HTML_TYPES = {HTML, "html"}


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def negotiate(request: Request) -> None:
    """406 unless the client accepts FHIR JSON (``_format`` wins over ``Accept``)."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if _media(fmt) not in _JSON_TYPES:
            raise NotAcceptable(
                f"_format '{fmt}' is not supported; this server speaks FHIR JSON", expression="_format"
            )
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    offered = [_media(a) for a in accept.split(",")]
    if not any(a in _ACCEPTABLE for a in offered):
        raise NotAcceptable(f"cannot answer in '{accept}'; this server speaks application/fhir+json")


def wants_html(request: Request) -> bool:
    """Whether a request for a page that also exists as HTML (``$summary``) asks for it: ``_format=html``
    (or ``text/html``), or ``Accept`` listing ``text/html`` before any JSON type. Otherwise the FHIR JSON
    negotiation applies (406 for anything else)."""
    fmt = request.query_params.get("_format")
    if fmt is not None and _media(fmt) in _HTML_TYPES:
        return True
    if fmt is None:
        for offered in (_media(a) for a in request.headers.get("accept", "").split(",")):
            if offered == HTML:
                return True
            if offered in _JSON_TYPES:
                break
    negotiate(request)
    return False


async def read_body(request: Request, limit: int, kinds: set[str] | None = None) -> bytes:
    """The request body, after checking its media type (415) and size (413)."""
    ctype = _media(request.headers.get("content-type", ""))
    allowed = kinds or _JSON_TYPES
    if ctype not in allowed:
        raise UnsupportedMedia(
            f"Content-Type '{ctype or '(none)'}' is not supported here; use {', '.join(sorted(allowed))}"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def patch_media() -> set[str]:
    """The media types PATCH accepts."""
    return _PATCH_TYPES


def _pretty(request: Request) -> bool:
    return request.query_params.get("_pretty", "").lower() == "true"


def json_response(
    request: Request, body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A FHIR JSON response, pretty-printed when ``_pretty=true``."""
    return Response(
        dumps(body, _pretty(request)),
        status_code=status,
        headers=headers,
        media_type=FHIR_JSON + "; charset=utf-8",
    )


def error_response(request: Request, exc: FhirError) -> Response:
    """The OperationOutcome response for a FhirError."""
    return json_response(request, exc.outcome(), exc.status, exc.headers)


def prefer_return(request: Request) -> str:
    """The ``return`` preference of the ``Prefer`` header (default ``representation``)."""
    for part in request.headers.get("prefer", "").split(";"):
        for item in part.split(","):
            key, _, value = item.strip().partition("=")
            if key.strip().lower() == "return":
                return value.strip().strip('"').lower()
    return "representation"


def result_headers(result: Result, base: str) -> dict[str, str]:
    """ETag, Last-Modified and Location for a result that concerns one version."""
    headers = dict(result.headers)
    rec = result.record
    if rec is not None:
        headers["ETag"] = f'W/"{rec.version}"'
        headers["Last-Modified"] = format_datetime(rec.last_updated.astimezone(UTC), usegmt=True)
        if result.location:
            headers["Location"] = f"{base}/{rec.rtype}/{rec.id}/_history/{rec.version}"
    return headers


def write_response(request: Request, result: Result, base: str) -> Response:
    """Render a write's result: headers always, the body per ``Prefer``."""
    headers = result_headers(result, base)
    preference = prefer_return(request)
    status = result.status
    if status == 204 and preference == "operationoutcome":
        status = 200
    body = body_for(result, preference) if status != 204 else None
    if body is None:
        return Response(status_code=status, headers=headers)
    return json_response(request, body, status, headers)
