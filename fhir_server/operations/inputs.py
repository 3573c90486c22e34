"""The input parameters of an operation, read from the URL and from a ``Parameters`` body.

An operation declares its input parameters as in its OperationDefinition (name → FHIR type, and
whether it repeats); :func:`read_inputs` reads them once for every operation: from the query string
(primitive parameters only, as the spec allows for GET) and, on POST, from a ``Parameters`` resource
(``value[x]`` of the declared type, or ``resource``). A bare resource as the POST body is the
``resource`` parameter when the operation declares one ($validate). A parameter the operation does
not declare, a value of the wrong type or a repeated single parameter is a 400 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from fhir_server.api.http import read_body
from fhir_server.fhir.codec import parse_json
from fhir_server.fhir.errors import BadRequest

Json = dict[str, Any]
_PRIMITIVES = {"uri", "code", "string", "canonical", "dateTime", "integer", "boolean"}
# Parameter types carried as ``resource`` in a Parameters body (``Resource``: any resource).
_RESOURCES = {"Resource", "ValueSet", "CodeSystem"}


@dataclass(frozen=True)
class Param:
    """An input parameter: its FHIR type (``Resource`` for any resource) and whether it repeats."""

    type: str
    repeats: bool = False


@dataclass
class Inputs:
    """The values of an invocation's input parameters."""

    values: dict[str, list[Any]] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The value of a single parameter, or None."""
        found = self.values.get(name)
        return found[0] if found else None

    def text(self, name: str) -> str | None:
        """The value of a single primitive parameter, as a string (None when absent)."""
        value = self.get(name)
        return None if value is None else str(value)


def _convert(name: str, kind: str, raw: str) -> Any:
    if kind == "integer":
        if not raw.lstrip("-").isdigit():
            raise BadRequest(f"parameter '{name}' must be an integer, not '{raw}'", expression=name)
        return int(raw)
    if kind == "boolean":
        if raw not in {"true", "false"}:
            raise BadRequest(f"parameter '{name}' must be true or false, not '{raw}'", expression=name)
        return raw == "true"
    return raw


def _add(inputs: Inputs, declared: dict[str, Param], name: str, value: Any) -> None:
    spec = declared.get(name)
    if spec is None:
        raise BadRequest(f"this operation has no parameter '{name}'", code="not-supported", expression=name)
    have = inputs.values.setdefault(name, [])
    if have and not spec.repeats:
        raise BadRequest(f"parameter '{name}' may be given once", expression=name)
    have.append(value)


def _from_parameters(body: Json, declared: dict[str, Param], inputs: Inputs) -> None:
    for i, part in enumerate(body.get("parameter") or ()):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            raise BadRequest("each parameter needs a name", expression=where)
        name = part["name"]
        spec = declared.get(name)
        if spec is None:
            raise BadRequest(
                f"this operation has no parameter '{name}'", code="not-supported", expression=where
            )
        if spec.type in _RESOURCES:
            value = part.get("resource")
            if not isinstance(value, dict):
                raise BadRequest(f"parameter '{name}' must carry a resource", expression=where)
        else:
            key = "value" + spec.type[:1].upper() + spec.type[1:]
            if key not in part:
                raise BadRequest(f"parameter '{name}' must be given as {key}", expression=f"{where}.{key}")
            value = part[key]
        _add(inputs, declared, name, value)


async def read_inputs(request: Request, declared: dict[str, Param], max_bytes: int) -> Inputs:
    """The inputs of one invocation (query string, then the POST body)."""
    inputs = Inputs()
    for name, raw in request.query_params.multi_items():
        if name.startswith("_"):
            continue  # _format, _pretty: the HTTP layer's
        spec = declared.get(name)
        if spec is not None and spec.type not in _PRIMITIVES:
            raise BadRequest(
                f"parameter '{name}' ({spec.type}) can only be given in a Parameters body", expression=name
            )
        _add(inputs, declared, name, _convert(name, spec.type if spec else "string", raw))
    no_body = request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers
    if request.method != "POST" or no_body:
        return inputs
    body = parse_json(await read_body(request, max_bytes))
    if not isinstance(body, dict):
        raise BadRequest("the body must be a Parameters resource", code="structure")
    if body.get("resourceType") == "Parameters":
        _from_parameters(body, declared, inputs)
    elif "resource" in declared:
        _add(inputs, declared, "resource", body)
    else:
        raise BadRequest("the body must be a Parameters resource", expression="resourceType")
    return inputs


def output_parameters(values: list[tuple[str, str, Any]]) -> Json:
    """A ``Parameters`` resource of (name, FHIR type, value) outputs; None values are left out."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": name, "value" + kind[:1].upper() + kind[1:]: value}
            for name, kind, value in values
            if value is not None
        ],
    }
