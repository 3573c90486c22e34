"""Write-time validation: parse, check FHIR JSON rules, validate with the R4B models and required bindings.

Validation happens once, on write; what is stored is the client's JSON (the models coerce some values,
so their dump is not what the client sent), and reads serve it without touching a model again.
Structural failures are 400 (the content is not a valid resource); required-binding failures are 422.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_server.fhir.bindings import check_required_bindings
from fhir_server.fhir.errors import BadRequest, Issue, Unprocessable
from fhir_server.fhir.registry import is_served
from fhir_server.fhir.typemodel import check_json_types
from fhir_server.profiles.registry import default_profiles

Json = dict[str, Any]

_MESSAGES = {
    "extra_forbidden": "unknown element",
    "missing": "required element is missing",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "int_type": "must be an integer",
    "dict_type": "must be an object",
    "model_type": "must be an object",
}


def fhirpath(root: str, loc: tuple[Any, ...] | list[Any]) -> str:
    """A FHIRPath expression for a location given as element names and array indexes."""
    out = root
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _check_json_shape(value: Any, path: str, issues: list[Issue], nulls_ok: bool = False) -> None:
    """FHIR JSON forbids nulls, empty objects, empty arrays and empty strings; the one exception is a
    null standing in an array of primitives paired with its ``_name`` extension array."""
    if value is None:
        if not nulls_ok:
            issues.append(Issue("structure", "null is not allowed in FHIR JSON", expression=path))
    elif isinstance(value, dict):
        if not value:
            issues.append(Issue("structure", "empty objects are not allowed in FHIR JSON", expression=path))
        for k, v in value.items():
            if isinstance(v, list):
                paired = k.startswith("_") or f"_{k}" in value
                if not v:
                    issues.append(
                        Issue(
                            "structure", "empty arrays are not allowed in FHIR JSON", expression=f"{path}.{k}"
                        )
                    )
                for i, item in enumerate(v):
                    _check_json_shape(item, f"{path}.{k}[{i}]", issues, nulls_ok=paired)
            else:
                _check_json_shape(v, f"{path}.{k}", issues)
    elif isinstance(value, str) and not value.strip():
        issues.append(Issue("structure", "empty or blank strings are not allowed", expression=path))


def _model_issues(rtype: str, data: Json) -> list[Issue]:
    try:
        get_fhir_model_class(rtype).model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if p != "__root__")
            detail = _MESSAGES.get(err["type"], err["msg"])
            issues.append(
                Issue("structure", f"{fhirpath(rtype, loc)}: {detail}", expression=fhirpath(rtype, loc))
            )
        return issues
    except (ValueError, TypeError) as exc:
        return [Issue("structure", f"{rtype}: {exc}", expression=rtype)]
    return []


def resource_type_of(data: Any, expected: str | None = None) -> str:
    """The body's ``resourceType``, checked against the served types and the URL's type."""
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object holding a FHIR resource", code="structure")
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise BadRequest("the resource has no resourceType", code="required", expression="resourceType")
    if expected is not None and rtype != expected:
        raise BadRequest(
            f"resourceType '{rtype}' does not match the type '{expected}' of the URL",
            expression="resourceType",
        )
    if not is_served(rtype):
        raise BadRequest(
            f"resource type '{rtype}' is not served here", code="not-supported", expression="resourceType"
        )
    return rtype


def structure_issues(data: Json, rtype: str) -> list[Issue]:
    """What makes ``data`` not a valid R4 resource of ``rtype`` (empty when it is one)."""
    issues: list[Issue] = []
    _check_json_shape(data, rtype, issues)
    if not issues:
        issues = _model_issues(rtype, data)
    if not issues:
        issues = [Issue("structure", f"{e}: {m}", expression=e) for e, m in check_json_types(data)]
    return issues


def validate_resource(data: Any, expected: str | None = None) -> Json:
    """Validate a resource body and return it (unchanged) when it is acceptable.

    Raises :class:`BadRequest` (400) for anything that is not a valid R4 resource and
    :class:`Unprocessable` (422) for codes outside a required binding and for what breaks the profiles
    that apply (``fhir_server.profiles.registry``: claimed ones, and the DMP profile of the type).
    """
    rtype = resource_type_of(data, expected)
    issues = structure_issues(data, rtype)
    if issues:
        raise BadRequest(issues=issues)
    binding = check_required_bindings(data)
    if binding:
        raise Unprocessable(
            issues=[
                Issue(
                    "code-invalid",
                    f"{b.expression}: code '{b.code}' is not in the required value set {b.valueset}",
                    expression=b.expression,
                )
                for b in binding
            ]
        )
    failures = [i for i in default_profiles().check(data) if i.severity in {"error", "fatal"}]
    if failures:
        raise Unprocessable(issues=failures)
    return data
