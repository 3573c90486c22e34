"""Mapping the extract's lines to FHIR: one invoice → one Claim (what was billed) and one
ExplanationOfBenefit (what was paid), with an item per line (docs/reimbursement-extract.md).

Pure functions of the lines and of the references they resolve to. Ids are derived from the invoice
number (and the patient for a Coverage), so writing the same invoice again lands on the same resources.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhir_server.dmp import systems
from fhir_server.dmp.extract import Row

Json = dict[str, Any]
CNAM_ORGANIZATION = "assurance-maladie"
_AMOUNTS = (("eligible", "base_amount"), ("benefit", "reimbursed_amount"), ("copay", "patient_share"))


def derived_id(kind: str, key: str) -> str:
    """A stable id for what the import writes: ``kind`` and a digest of its natural key."""
    return f"{kind}-{hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:32]}"


def claim_id(invoice_id: str) -> str:
    return derived_id("clm", invoice_id)


def eob_id(invoice_id: str) -> str:
    return derived_id("eob", invoice_id)


def coverage_id(patient_id: str) -> str:
    return derived_id("cov", patient_id)


def practitioner_id(rpps: str) -> str:
    """The id of a Practitioner the import creates for an RPPS no resource carries yet."""
    return f"rpps-{rpps}"


def organization_id(finess: str) -> str:
    """The id of an Organization the import creates for a FINESS no resource carries yet."""
    return f"finess-{finess}"


def ref(rtype: str, rid: str) -> Json:
    return {"reference": f"{rtype}/{rid}"}


def euros(value: Decimal) -> Json:
    """A Money in euros (the server keeps the decimal's digits)."""
    return {"value": value, "currency": "EUR"}


def cnam_organization() -> Json:
    """The insurer of every reimbursement: the Assurance Maladie."""
    return {
        "resourceType": "Organization",
        "id": CNAM_ORGANIZATION,
        "active": True,
        "name": "Assurance Maladie",
        "type": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "ins"}]}
        ],
    }


def new_practitioner(rpps: str) -> Json:
    """What the import knows of a professional named only by an extract: the RPPS."""
    return {
        "resourceType": "Practitioner",
        "id": practitioner_id(rpps),
        "identifier": [{"system": systems.RPPS, "value": rpps}],
    }


def new_organization(finess: str) -> Json:
    """What the import knows of an establishment named only by an extract: the FINESS."""
    return {
        "resourceType": "Organization",
        "id": organization_id(finess),
        "identifier": [{"system": systems.FINESS, "value": finess}],
    }


def coverage(patient_id: str) -> Json:
    """The patient's compulsory health insurance, which every ExplanationOfBenefit cites."""
    return {
        "resourceType": "Coverage",
        "id": coverage_id(patient_id),
        "status": "active",
        "type": {"text": "Assurance Maladie obligatoire"},
        "beneficiary": ref("Patient", patient_id),
        "payor": [ref("Organization", CNAM_ORGANIZATION)],
    }


@dataclass(frozen=True)
class Parties:
    """What an invoice's lines resolve to: the patient, and the resource of each RPPS and FINESS."""

    patient: str
    practitioners: dict[str, str]
    organizations: dict[str, str]

    def performer(self, row: Row) -> Json:
        if row["performer_kind"] == "PS":
            return ref("Practitioner", self.practitioners[row["performer_id"]])
        return ref("Organization", self.organizations[row["performer_id"]])


def _claim_type(rows: Sequence[Row]) -> str:
    if any(r["code_system"] in systems.PHARMACY_CODE_SYSTEMS for r in rows):
        return "pharmacy"
    return "institutional" if rows[0]["performer_kind"] == "ETAB" else "professional"


def _care_team(rows: Sequence[Row], parties: Parties) -> tuple[list[Json], dict[str, int]]:
    """The performer (sequence 1), then each prescriber; and the sequence of each prescriber's RPPS."""

    def member(seq: int, who: Json, role: str) -> Json:
        return {
            "sequence": seq,
            "provider": who,
            "role": {"coding": [{"system": systems.CARE_TEAM_ROLE, "code": role}]},
        }

    team = [member(1, parties.performer(rows[0]), "performer")]
    seqs: dict[str, int] = {}
    for r in rows:
        rpps = r["prescriber_rpps"]
        if rpps and rpps not in seqs:
            seqs[rpps] = len(team) + 1
            team.append(member(seqs[rpps], ref("Practitioner", parties.practitioners[rpps]), "prescriber"))
    return team, seqs


def _product(row: Row) -> Json:
    coding = {
        "system": systems.EXTRACT_CODE_SYSTEMS[row["code_system"]],
        "code": row["code"],
        "display": row["label"],
    }
    return {"coding": [coding], "text": row["label"]}


def _common(invoice_id: str, rows: Sequence[Row], parties: Parties, rtype: str) -> tuple[Json, list[Json]]:
    """What Claim and ExplanationOfBenefit share, and their items without amounts."""
    team, seqs = _care_team(rows, parties)
    items = []
    for r in rows:
        item: Json = {
            "sequence": int(r["line_no"]),
            "careTeamSequence": [1, *([seqs[r["prescriber_rpps"]]] if r["prescriber_rpps"] else [])],
            "productOrService": _product(r),
            "servicedDate": r["care_date"],
            "quantity": {"value": int(r["quantity"])},
            "net": euros(Decimal(r["base_amount"])),
        }
        items.append(item)
    cares = sorted(r["care_date"] for r in rows)
    body: Json = {
        "resourceType": rtype,
        "identifier": [{"system": systems.CNAM_INVOICE, "value": invoice_id}],
        "status": "active",
        "type": {"coding": [{"system": systems.CLAIM_TYPE, "code": _claim_type(rows)}]},
        "use": "claim",
        "patient": ref("Patient", parties.patient),
        "billablePeriod": {"start": cares[0], "end": cares[-1]},
        "insurer": ref("Organization", CNAM_ORGANIZATION),
        "provider": parties.performer(rows[0]),
        "careTeam": team,
    }
    return body, items


def _sum(rows: Sequence[Row], column: str) -> Decimal:
    return sum((Decimal(r[column]) for r in rows), Decimal("0.00"))


def invoice_resources(invoice_id: str, rows: Sequence[Row], parties: Parties) -> tuple[Json, Json]:
    """The Claim and the ExplanationOfBenefit of one invoice (``rows``: all its lines)."""
    rows = sorted(rows, key=lambda r: int(r["line_no"]))
    cov = ref("Coverage", coverage_id(parties.patient))
    common, items = _common(invoice_id, rows, parties, "Claim")
    claim = {
        **common,
        "id": claim_id(invoice_id),
        "created": max(r["care_date"] for r in rows),
        "priority": {"coding": [{"system": systems.PROCESS_PRIORITY, "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": cov}],
        "item": items,
        "total": euros(_sum(rows, "base_amount")),
    }
    common, items = _common(invoice_id, rows, parties, "ExplanationOfBenefit")
    for item, r in zip(items, rows, strict=True):
        item["adjudication"] = [
            {
                "category": {"coding": [{"system": systems.ADJUDICATION, "code": code}]},
                "amount": euros(Decimal(r[col])),
            }
            for code, col in _AMOUNTS
        ]
    eob = {
        **common,
        "id": eob_id(invoice_id),
        "created": rows[0]["payment_date"],
        "claim": ref("Claim", claim_id(invoice_id)),
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": cov}],
        "item": items,
        "total": [
            {
                "category": {"coding": [{"system": systems.ADJUDICATION, "code": code}]},
                "amount": euros(_sum(rows, col)),
            }
            for code, col in _AMOUNTS
        ],
        "payment": {"date": rows[0]["payment_date"], "amount": euros(_sum(rows, "reimbursed_amount"))},
    }
    return claim, eob
