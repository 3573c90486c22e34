"""``[type]/$validate`` and ``[type]/[id]/$validate``: would the server accept this resource?

Per the R4 OperationDefinition (``Resource-validate``): the ``resource`` (a Parameters body or the bare
resource; at instance level the stored one when none is sent), ``mode`` (``create``, ``update``,
``delete``, or ``profile``) and ``profile``. The answer is always 200 with an OperationOutcome listing
every issue (errors, warnings), or one informational issue when there is nothing to say; a problem
with the request itself (unknown profile, bad mode) is a 400.

What is checked: the R4 structure (as on write), then either the nominated ``profile`` in full, or the
base definition of the type in full (its invariants and bindings) plus what a write applies (claimed
profiles in full, the DMP profile of the type), and for a document the write's rule on its visibility
labels. ``update`` also checks the id; ``delete`` checks that the resource exists and that the caller
may delete it.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from fhir_server.api.http import json_response
from fhir_server.auth.labels import check_visibility, policy_labels
from fhir_server.auth.scopes import DELETE
from fhir_server.fhir.errors import BadRequest, FhirError, Issue, operation_outcome
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.fhir.validation import resource_type_of, structure_issues
from fhir_server.operations.inputs import Param, read_inputs
from fhir_server.operations.registry import Operation, OperationCall
from fhir_server.profiles.registry import BASE, default_profiles

Json = dict[str, Any]
_INPUTS = {"resource": Param("Resource"), "mode": Param("code"), "profile": Param("uri")}
_MODES = {"create", "update", "delete", "profile"}


def resource_issues(resource: Json, rtype: str, profile: str | None = None) -> list[Issue]:
    """Every issue of ``resource`` as ``$validate`` reports them (without the request checks)."""
    issues = structure_issues(resource, rtype)
    if issues:
        return issues
    profiles = default_profiles()
    if profile is not None:
        found = profiles.validate(resource, profile)
    else:
        found = profiles.validate(resource, BASE + rtype) + profiles.check(resource)
    return list(dict.fromkeys(found))


async def _handle(call: OperationCall) -> Response:
    rtype = call.rtype or ""
    inputs = await read_inputs(call.request, _INPUTS, call.services.settings.max_body_bytes)
    mode = inputs.text("mode") or ("update" if call.rid else "create")
    if mode not in _MODES:
        raise BadRequest(f"mode '{mode}' is not one of {', '.join(sorted(_MODES))}", expression="mode")
    profile = inputs.text("profile")
    if profile is not None and default_profiles().structure(profile) is None:
        raise BadRequest(f"profile '{profile}' is not known here", code="not-supported", expression="profile")
    resources = call.services.resources.bound(call.access)
    if mode == "delete":
        if call.rid is None:
            raise BadRequest("mode delete needs a resource id ([type]/[id]/$validate)", expression="mode")
        await resources.read(rtype, call.rid)
        call.access.require(rtype, DELETE)
        return _outcome(call, [])
    resource = inputs.get("resource")
    if resource is None:
        if call.rid is None:
            raise BadRequest("there is no resource to validate", code="required", expression="resource")
        resource = (await resources.read(rtype, call.rid)).resource or {}
    issues: list[Issue] = []
    try:
        resource_type_of(resource, rtype)
    except FhirError as exc:
        return _outcome(call, exc.issues)
    if mode == "update" and call.rid is not None and resource.get("id") != call.rid:
        issues.append(
            Issue("invariant", f"an update of {rtype}/{call.rid} needs the id '{call.rid}'", expression="id")
        )
    issues += resource_issues(resource, rtype, profile)
    if rtype == "DocumentReference":
        # The write path's own rule on visibility labels (not a profile rule: it depends on a setting).
        problem = check_visibility(policy_labels(rtype, resource), resources.allow_invisible_and_masked)
        if problem:
            issues.append(Issue("business-rule", problem, expression="DocumentReference.meta.security"))
    return _outcome(call, issues)


def _outcome(call: OperationCall, issues: list[Issue]) -> Response:
    if not issues:
        issues = [Issue("informational", "no issues: the resource would be accepted", severity="information")]
    return json_response(call.request, operation_outcome(issues))


OPERATION = Operation(
    name="validate",
    handler=_handle,
    definition="http://hl7.org/fhir/OperationDefinition/Resource-validate",
    types=SERVED_TYPES,
    instances=SERVED_TYPES,
    documentation="Validate a resource against the R4 base definition, the DMP profile of its type or a "
    "nominated profile (modes create, update, delete, profile)",
    audited=False,
)
