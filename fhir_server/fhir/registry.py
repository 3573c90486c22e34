"""The resource types this server serves."""

from __future__ import annotations

SERVED_TYPES: tuple[str, ...] = (
    "AllergyIntolerance",
    "AuditEvent",
    "Binary",
    "Claim",
    "Consent",
    "Coverage",
    "DocumentReference",
    "ExplanationOfBenefit",
    "Group",
    "Medication",
    "MedicationStatement",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Provenance",
)
SERVED = frozenset(SERVED_TYPES)


def is_served(rtype: str) -> bool:
    """Whether ``rtype`` is a resource type this server stores."""
    return rtype in SERVED
