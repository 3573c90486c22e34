"""Builders of reimbursement data for the operation tests: small valid R4 Claims and ExplanationOfBenefits
with items (productOrService, servicedDate), a care team and a provider, shaped as the import makes them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fhir_server.dmp.systems import CCAM, CIP_UCD, NABM, NGAP
from tests.policy.dmp import document

CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
CARE_TEAM_ROLE = "http://terminology.hl7.org/CodeSystem/claimcareteamrole"
# An act: (system, code, display).
Act = tuple[str, str, str]
CHEST_XRAY: Act = (CCAM, "ZBQK002", "Radiographie du thorax")
MAMMOGRAPHY: Act = (CCAM, "QEQK004", "Mammographie bilatérale")
KNEE_XRAY: Act = (CCAM, "NFQK003", "Radiographie du genou")
HBA1C: Act = (NABM, "1577", "Hémoglobine glyquée (HbA1c)")
GLUCOSE: Act = (NABM, "0552", "Glucose (glycémie)")
GP_VISIT: Act = (NGAP, "G", "Consultation de médecine générale")
METFORMIN: Act = (CIP_UCD, "3400930000001", "Metformine 850 mg, 30 comprimés")


def days_ago(n: int) -> str:
    return (date.today() - timedelta(days=n)).isoformat()


def _common(pid: str, performer: str, when: str, acts: list[Act], kind: str) -> dict[str, Any]:
    return {
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": kind}]},
        "use": "claim",
        "patient": {"reference": f"Patient/{pid}"},
        "created": when,
        "provider": {"reference": performer},
        "careTeam": [
            {
                "sequence": 1,
                "provider": {"reference": performer},
                "role": {"coding": [{"system": CARE_TEAM_ROLE, "code": "primary"}]},
            }
        ],
        "item": [
            {
                "sequence": i,
                "careTeamSequence": [1],
                "productOrService": {"coding": [{"system": s, "code": c, "display": d}], "text": d},
                "servicedDate": when,
            }
            for i, (s, c, d) in enumerate(acts, 1)
        ],
    }


def eob(pid: str, performer: str, when: str, acts: list[Act], kind: str = "professional") -> dict[str, Any]:
    """An ExplanationOfBenefit of one invoice: every act on ``when`` by ``performer`` (``Type/id``)."""
    return {
        "resourceType": "ExplanationOfBenefit",
        **_common(pid, performer, when, acts, kind),
        "insurer": {"display": "Assurance Maladie"},
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"display": "Régime général"}}],
    }


def claim(pid: str, performer: str, when: str, acts: list[Act], kind: str = "professional") -> dict[str, Any]:
    """The Claim of the same invoice."""
    return {
        "resourceType": "Claim",
        **_common(pid, performer, when, acts, kind),
        "priority": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]
        },
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Régime général"}}],
    }


def report(pid: str, type_code: str, when: str, author: str, event: Act | None = None) -> dict[str, Any]:
    """A DocumentReference of a report, dated, authored, optionally naming its act (context.event)."""
    doc = document(pid, type_code, author=author)
    doc["date"] = f"{when}T10:00:00+01:00"
    if event is not None:
        doc["context"] = {"event": [{"coding": [{"system": event[0], "code": event[1]}]}]}
    return doc
