"""Policy labels: what the DMP access rules need to know about a resource, derived at write time and
stored beside it (``pol``), so that the per-request policy is a plain index query (DESIGN.md).

- DocumentReference: ``doc`` (its class and type codes, as the habilitation matrix names them),
  ``sec`` (its visibility labels, TRE_A07), ``aut`` (its authors, ``Type/id``) and ``bin`` (the ids of
  the Binaries holding its content). A Binary carries the labels of the document that cites it, so its
  content is exactly as visible as the document (DOMAIN.md: reading a category means its Binary too).
- AuditEvent: ``agt`` (its agents, ``Type/id``), so a professional reads their own traces only.
- Consent: ``act`` (actors, ``Type/id``), ``eff`` (``permit``/``deny``), ``pur`` (purpose codes) and
  ``on`` (active), so that a professional's authorizations and blocks are one indexed lookup.
"""

from __future__ import annotations

from typing import Any

VISIBILITY_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
)
MASKED_FROM_PROFESSIONALS = "MASQUE_PS"
INVISIBLE_TO_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_TO_REPRESENTATIVES = "INVISIBLE_REPRESENTANTS_LEGAUX"

Labels = dict[str, Any]

# The indexes behind the policy's lookups (a Binary's document, a professional's consents, the
# refusals of a mode or of research, a professional's own traces).
POLICY_INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    "DocumentReference": [[("pol.bin", 1)]],
    "Consent": [[("pol.act", 1)], [("pol.pur", 1)]],
    "AuditEvent": [[("pol.agt", 1)]],
}


def local_reference(ref: object, rtype: str | None = None) -> str | None:
    """``Type/id`` of a literal reference (relative, absolute or versioned), optionally of one type."""
    if not isinstance(ref, str) or "/" not in ref or ref.startswith(("#", "urn:")):
        return None
    parts = ref.split("/_history/", 1)[0].rstrip("/").split("/")
    if len(parts) < 2:
        return None
    found = f"{parts[-2]}/{parts[-1]}"
    return found if rtype is None or parts[-2] == rtype else None


def _codes(concepts: list[Any]) -> list[str]:
    return [
        c["code"]
        for concept in concepts
        if isinstance(concept, dict)
        for c in concept.get("coding") or []
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    ]


def visibility(resource: dict[str, Any]) -> list[str]:
    """The TRE_A07 visibility labels in ``meta.security``."""
    return sorted(
        {
            c["code"]
            for c in (resource.get("meta") or {}).get("security") or []
            if isinstance(c, dict) and c.get("system") == VISIBILITY_SYSTEM and isinstance(c.get("code"), str)
        }
    )


def _document_labels(res: dict[str, Any]) -> Labels:
    doc = sorted(set(_codes(res.get("category") or []) + _codes([res.get("type") or {}])))
    authors = sorted(
        {r for a in res.get("author") or [] if (r := local_reference((a or {}).get("reference")))}
    )
    binaries = sorted(
        {
            r.split("/", 1)[1]
            for c in res.get("content") or []
            if (r := local_reference(((c or {}).get("attachment") or {}).get("url"), "Binary"))
        }
    )
    return {"doc": doc, "sec": visibility(res), "aut": authors, "bin": binaries}


def _consent_labels(res: dict[str, Any]) -> Labels:
    provision = res.get("provision") or {}
    actors = sorted(
        {
            r
            for a in provision.get("actor") or []
            if (r := local_reference(((a or {}).get("reference") or {}).get("reference")))
        }
    )
    purposes = sorted({p["code"] for p in provision.get("purpose") or [] if isinstance(p.get("code"), str)})
    return {
        "act": actors,
        "eff": provision.get("type"),
        "pur": purposes,
        "on": res.get("status") == "active",
    }


def _audit_labels(res: dict[str, Any]) -> Labels:
    agents = sorted(
        {
            r
            for a in res.get("agent") or []
            if (r := local_reference(((a or {}).get("who") or {}).get("reference")))
        }
    )
    return {"agt": agents}


def policy_labels(rtype: str, resource: dict[str, Any]) -> Labels:
    """The labels stored with ``resource`` (empty for types the rules do not look inside)."""
    if rtype == "AuditEvent":
        return _audit_labels(resource)
    if rtype == "DocumentReference":
        return _document_labels(resource)
    if rtype == "Consent":
        return _consent_labels(resource)
    return {}


def inherited(document_labels: Labels) -> Labels:
    """What a Binary keeps of the labels of the document citing it."""
    return {k: v for k, v in document_labels.items() if k != "bin"}


def check_visibility(labels: Labels, allow_both: bool) -> str | None:
    """Why a document's visibility labels are not allowed (invisible to the patient and masked from
    professionals at once, unless the matrix allows it), or None."""
    sec = set(labels.get("sec") or ())
    if not allow_both and {INVISIBLE_TO_PATIENT, MASKED_FROM_PROFESSIONALS} <= sec:
        return (
            f"a document cannot be both {INVISIBLE_TO_PATIENT} and {MASKED_FROM_PROFESSIONALS}: "
            "nobody but its author and the attending doctor could read it"
        )
    return None
