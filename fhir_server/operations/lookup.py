"""``CodeSystem/$lookup``: the display of a code of one of the code systems of ``terminology/``.

Inputs per the R4 OperationDefinition (``CodeSystem-lookup``): ``system`` and ``code``, or ``coding``
(``version``, ``date``, ``displayLanguage`` and ``property`` are accepted and not used: one version of
each system is held). Outputs ``name``, ``version`` and ``display``. An unknown system or code is a 404.
"""

from __future__ import annotations

from starlette.responses import Response

from fhir_server.api.http import json_response
from fhir_server.fhir.errors import BadRequest, NotFound
from fhir_server.operations.inputs import Param, output_parameters, read_inputs
from fhir_server.operations.registry import Operation, OperationCall
from fhir_server.terminology.service import default_terminology

_INPUTS = {
    "code": Param("code"),
    "system": Param("uri"),
    "version": Param("string"),
    "coding": Param("Coding"),
    "date": Param("dateTime"),
    "displayLanguage": Param("code"),
    "property": Param("code", repeats=True),
}


async def _handle(call: OperationCall) -> Response:
    inputs = await read_inputs(call.request, _INPUTS, call.services.settings.max_body_bytes)
    coding = inputs.get("coding")
    if isinstance(coding, dict):
        system, code = coding.get("system"), coding.get("code")
    else:
        system, code = inputs.text("system"), inputs.text("code")
    if not isinstance(system, str) or not isinstance(code, str):
        raise BadRequest("$lookup needs system and code (or a coding)", code="required", expression="code")
    terms = default_terminology()
    cs = terms.by_url("CodeSystem", system)
    if cs is None:
        raise NotFound(f"the code system {system} is not known here", expression="system")
    if cs.get("content") == "not-present":
        raise NotFound(f"the codes of {system} are not held here", code="not-supported", expression="system")
    concept = terms.concept(system, code)
    if concept is None:
        raise NotFound(f"code '{code}' is not in the code system {system}", expression="code")
    out = output_parameters(
        [
            ("name", "string", cs.get("title") or cs.get("name")),
            ("version", "string", cs.get("version")),
            ("display", "string", concept.get("display", code)),
        ]
    )
    return json_response(call.request, out)


OPERATION = Operation(
    name="lookup",
    handler=_handle,
    definition="http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
    types=("CodeSystem",),
    documentation="The display of a code of the DMP code systems (document classes, visibility, professions, "
    "creation channels)",
    audited=False,
)
