"""``ValueSet/$validate-code`` and ``ValueSet/[id]/$validate-code``: is this code in that value set?

Inputs per the R4 OperationDefinition (``ValueSet-validate-code``): the value set (``url``, by id, or
inline ``valueSet``) and the code as ``code`` + ``system`` (+ ``display``), ``coding`` or
``codeableConcept`` (valid when one of its codings is). The R4 value sets of required bindings are
known by url too. Outputs ``result``, ``message`` (why not, or why it could not be checked) and the
code's ``display``. A display that differs from the code's makes the result false.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from fhir_server.api.http import json_response
from fhir_server.fhir.bindings import r4_valueset
from fhir_server.fhir.errors import BadRequest
from fhir_server.operations.expand import target_valueset
from fhir_server.operations.inputs import Inputs, Param, output_parameters, read_inputs
from fhir_server.operations.registry import Operation, OperationCall
from fhir_server.terminology.service import Terminology, default_terminology

Json = dict[str, Any]
_INPUTS = {
    "url": Param("uri"),
    "context": Param("uri"),
    "valueSet": Param("ValueSet"),
    "valueSetVersion": Param("string"),
    "code": Param("code"),
    "system": Param("uri"),
    "systemVersion": Param("string"),
    "display": Param("string"),
    "coding": Param("Coding"),
    "codeableConcept": Param("CodeableConcept"),
    "date": Param("dateTime"),
    "abstract": Param("boolean"),
    "displayLanguage": Param("code"),
}


def _codings(inputs: Inputs) -> list[Json]:
    concept = inputs.get("codeableConcept")
    if isinstance(concept, dict):
        return [c for c in concept.get("coding", ()) if isinstance(c, dict)]
    coding = inputs.get("coding")
    if isinstance(coding, dict):
        return [coding]
    code = inputs.text("code")
    if code is None:
        raise BadRequest(
            "give code (and system), coding or codeableConcept", code="required", expression="code"
        )
    return [{"system": inputs.text("system"), "code": code, "display": inputs.text("display")}]


def _check(terms: Terminology, url: str, coding: Json) -> tuple[bool, str | None, str | None]:
    """(valid, message, display) for one coding."""
    system, code, display = coding.get("system"), coding.get("code"), coding.get("display")
    if not isinstance(code, str):
        return False, "a coding without a code", None
    where = f"{system}|{code}" if system else code
    found = terms.contains(url, system, code)
    if found is False:
        return False, f"the code {where} is not in the value set {url}", None
    if found is None:
        return False, f"the code {where} cannot be checked against {url}", None
    concept = terms.concept(system, code) if system else None
    known = concept.get("display") if concept else None
    if not known and terms.is_local(url):
        known = next((c.display for c in terms.listed(url) if c.code == code and c.system == system), None)
    if display and known and display != known:
        return False, f"the display of {where} is '{known}', not '{display}'", known
    if concept is None and system and terms.by_url("CodeSystem", system) is not None:
        cs = terms.by_url("CodeSystem", system) or {}
        if cs.get("content") == "not-present":
            return True, f"only the system was checked: the codes of {system} are not held here", None
    return True, None, known


async def _handle(call: OperationCall) -> Response:
    inputs = await read_inputs(call.request, _INPUTS, call.services.settings.max_body_bytes)
    terms = default_terminology()
    url = inputs.text("url")
    by_url = call.rid is None and inputs.get("valueSet") is None and url is not None
    if not (by_url and url and not terms.is_local(url) and r4_valueset(url) is not None):
        # Not an R4 value set known by url only: one of ours (by url, id or inline).
        terms, vs = target_valueset(call, inputs)
        url = vs["url"]
    assert url is not None
    results = [_check(terms, url, c) for c in _codings(inputs)]
    good = next((r for r in results if r[0]), None)
    chosen = good or (results[0] if results else (False, "no coding to check", None))
    out = output_parameters(
        [("result", "boolean", chosen[0]), ("message", "string", chosen[1]), ("display", "string", chosen[2])]
    )
    return json_response(call.request, out)


OPERATION = Operation(
    name="validate-code",
    handler=_handle,
    definition="http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
    types=("ValueSet",),
    instances=("ValueSet",),
    documentation="Whether a code (code and system, Coding or CodeableConcept) is in a DMP or R4 value set",
    audited=False,
)
