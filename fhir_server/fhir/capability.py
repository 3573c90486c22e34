"""The CapabilityStatement, generated from what the code supports.

The types come from the registry and the search parameters from the search registry, so the statement
cannot advertise what does not work. ``capability_statement.json`` at the repository root is this
statement (without the deployment's URL); a test fails when they differ. Regenerate it with
``fhir-server capability > capability_statement.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir_server import __version__
from fhir_server.auth.smart import smart_endpoints
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.operations.registry import Operation
from fhir_server.operations.table import OPERATIONS
from fhir_server.profiles.registry import default_profiles
from fhir_server.search.registry import supported_params

Json = dict[str, Any]

# The statement's own date: the release it describes, not the moment it is served.
_RELEASE_DATE = "2026-11-23"
_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]


def _resource(rtype: str) -> Json:
    params = [{"name": p.code, "definition": p.url, "type": p.kind} for p in supported_params(rtype).values()]
    dmp = default_profiles().dmp_profile(rtype)
    out: Json = {
        "type": rtype,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
        **({"supportedProfile": [dmp]} if dmp else {}),
        "interaction": [{"code": c} for c in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "referencePolicy": ["literal", "local"],
    }
    refs = [p.code for p in supported_params(rtype).values() if p.kind == "reference"]
    if refs:
        out["searchInclude"] = ["*", *(f"{rtype}:{c}" for c in refs)]
    revs = [
        f"{t}:{p.code}"
        for t in SERVED_TYPES
        for p in supported_params(t).values()
        if p.kind == "reference" and rtype in p.targets
    ]
    if revs:
        out["searchRevInclude"] = revs
    if params:
        out["searchParam"] = params
    ops = _operations(lambda op: rtype in op.types or rtype in op.instances)
    if ops:
        out["operation"] = ops
    return out


# The conformance resources served read-only from files (api/conformance_routes.py).
_CONFORMANCE = ("CodeSystem", "ConceptMap", "StructureDefinition", "ValueSet")
_CONFORMANCE_PARAMS = [
    ("_id", "http://hl7.org/fhir/SearchParameter/Resource-id", "token"),
    ("url", "http://hl7.org/fhir/SearchParameter/conformance-url", "uri"),
    ("name", "http://hl7.org/fhir/SearchParameter/conformance-name", "string"),
    ("status", "http://hl7.org/fhir/SearchParameter/conformance-status", "token"),
    ("version", "http://hl7.org/fhir/SearchParameter/conformance-version", "token"),
]


def _conformance_resource(rtype: str) -> Json:
    params = list(_CONFORMANCE_PARAMS)
    if rtype == "StructureDefinition":
        params.append(("type", "http://hl7.org/fhir/SearchParameter/StructureDefinition-type", "token"))
    out: Json = {
        "type": rtype,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
        "documentation": "Read-only: the definitions of this release (profiles/ and terminology/)",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": n, "definition": u, "type": k} for n, u, k in params],
    }
    ops = _operations(lambda op: rtype in op.types or rtype in op.instances)
    if ops:
        out["operation"] = ops
    return out


def _operations(where: Callable[[Operation], bool]) -> list[Json]:
    return [
        {
            "name": op.name,
            "definition": op.definition,
            **({"documentation": op.documentation} if op.documentation else {}),
        }
        for op in OPERATIONS
        if where(op)
    ]


_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _security(base_url: str | None) -> Json:
    """SMART on FHIR as the security service; the OAuth endpoints (``oauth-uris``) when the base is known."""
    security: Json = {
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth 2 with the SMART App Launch 2.x and Backend Services profiles",
            }
        ],
        "description": "Every interaction but metadata needs a bearer token; see "
        "[base]/.well-known/smart-configuration.",
    }
    if base_url:
        urls = smart_endpoints(base_url)
        security["extension"] = [
            {
                "url": _OAUTH_URIS,
                "extension": [
                    {"url": k, "valueUri": urls[k]} for k in ("authorize", "token", "introspect", "revoke")
                ],
            }
        ]
    return security


def capability_statement(base_url: str | None = None) -> Json:
    """The server's CapabilityStatement; ``base_url`` fills ``implementation.url`` when given."""
    implementation: Json = {"description": "dmp-fhir: FHIR R4 server for the Dossier Médical Partagé"}
    if base_url:
        implementation["url"] = base_url
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _RELEASE_DATE,
        "publisher": "dmp-fhir",
        "kind": "instance",
        "software": {"name": "dmp-fhir", "version": __version__},
        "implementation": implementation,
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "security": _security(base_url),
                "resource": sorted(
                    [
                        *(_resource(t) for t in SERVED_TYPES),
                        *(_conformance_resource(t) for t in _CONFORMANCE),
                    ],
                    key=lambda r: str(r["type"]),
                ),
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "search-system"},
                    {"code": "history-system"},
                ],
                **({"operation": ops} if (ops := _operations(lambda op: op.system)) else {}),
            }
        ],
    }
