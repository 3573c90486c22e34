"""``ValueSet/$expand`` and ``ValueSet/[id]/$expand``: the codes of a value set of ``terminology/``.

Inputs per the R4 OperationDefinition (``ValueSet-expand``): the value set by ``url`` (type level),
by id (instance level) or inline (``valueSet``, POST); ``filter`` keeps the codes whose code or display
contains the text (case and accents ignored); ``offset`` and ``count`` page the result. A value set
that draws on whole code systems whose codes are not held (CCAM, CIP13…) cannot be expanded (422).
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from fhir_server.api.http import json_response
from fhir_server.fhir.dates import instant, now_ms
from fhir_server.fhir.errors import BadRequest, NotFound, Unprocessable
from fhir_server.operations.inputs import Inputs, Param, read_inputs
from fhir_server.operations.registry import Operation, OperationCall
from fhir_server.terminology.service import Terminology, TerminologyError, default_terminology

Json = dict[str, Any]
_INPUTS = {
    "url": Param("uri"),
    "valueSet": Param("ValueSet"),
    "valueSetVersion": Param("string"),
    "filter": Param("string"),
    "date": Param("dateTime"),
    "offset": Param("integer"),
    "count": Param("integer"),
    "includeDesignations": Param("boolean"),
    "activeOnly": Param("boolean"),
    "displayLanguage": Param("code"),
}


def target_valueset(call: OperationCall, inputs: Inputs) -> tuple[Terminology, Json]:
    """The value set an invocation is about (by id, url or inline), and the terminology to use."""
    terms = default_terminology()
    inline = inputs.get("valueSet")
    if isinstance(inline, dict):
        if inline.get("resourceType") != "ValueSet" or not inline.get("url"):
            raise BadRequest("valueSet must be a ValueSet with a url", expression="valueSet")
        return terms.with_resource(inline), inline
    if call.rid is not None:
        vs = terms.read("ValueSet", call.rid)
        if vs is None:
            raise NotFound(f"ValueSet/{call.rid} does not exist")
        return terms, vs
    url = inputs.text("url")
    if url is None:
        raise BadRequest(
            "name the value set: url, valueSet, or ValueSet/[id]", code="required", expression="url"
        )
    vs = terms.by_url("ValueSet", url)
    if vs is None:
        raise NotFound(f"the value set {url} is not known here", expression="url")
    return terms, vs


async def _handle(call: OperationCall) -> Response:
    inputs = await read_inputs(call.request, _INPUTS, call.services.settings.max_body_bytes)
    terms, vs = target_valueset(call, inputs)
    text = inputs.text("filter")
    offset, count = inputs.get("offset") or 0, inputs.get("count")
    if offset < 0 or (count is not None and count < 0):
        raise BadRequest(
            "offset and count may not be negative", expression="offset" if offset < 0 else "count"
        )
    try:
        concepts = terms.expand(vs["url"], text)
    except TerminologyError as exc:
        raise Unprocessable(str(exc), code="too-costly", expression="url") from exc
    page = concepts[offset : None if count is None else offset + count]
    parameters: list[Json] = [{"name": "offset", "valueInteger": offset}]
    if text:
        parameters.append({"name": "filter", "valueString": text})
    if count is not None:
        parameters.append({"name": "count", "valueInteger": count})
    expansion = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": instant(now_ms()),
        "total": len(concepts),
        "offset": offset,
        "parameter": parameters,
        **(
            {
                "contains": [
                    {"system": c.system, "code": c.code, **({"display": c.display} if c.display else {})}
                    for c in page
                ]
            }
            if page
            else {}
        ),
    }
    body = {k: v for k, v in vs.items() if k not in {"compose", "text"}}
    return json_response(call.request, {**body, "expansion": expansion})


OPERATION = Operation(
    name="expand",
    handler=_handle,
    definition="http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
    types=("ValueSet",),
    instances=("ValueSet",),
    documentation="The codes of a DMP value set, with filter (code or display contains, accents ignored), "
    "offset and count",
    audited=False,
)
