"""Reading the items of reimbursement Claims and ExplanationOfBenefits: what was done (productOrService),
when (servicedDate / servicedPeriod) and by whom (the item's care team member, else the provider)."""

from __future__ import annotations

from typing import Any

from fhir_server.auth.labels import local_reference

Coding = tuple[str, str]


def item_date(item: dict[str, Any]) -> str | None:
    """The care date (``YYYY-MM-DD``) of an item: ``servicedDate`` or the start of ``servicedPeriod``."""
    value = item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start")
    return value[:10] if isinstance(value, str) else None


def item_codings(item: dict[str, Any]) -> list[Coding]:
    """The (system, code) pairs of an item's ``productOrService``."""
    return [
        (c["system"], c["code"])
        for c in (item.get("productOrService") or {}).get("coding") or []
        if isinstance(c.get("system"), str) and isinstance(c.get("code"), str)
    ]


def item_label(item: dict[str, Any]) -> str:
    """What an item was, for a reader: the text or display of its productOrService, else its code."""
    concept = item.get("productOrService") or {}
    if concept.get("text"):
        return str(concept["text"])
    codings = concept.get("coding") or []
    return next(
        (str(c.get("display") or c.get("code")) for c in codings if c.get("display") or c.get("code")),
        "acte sans libellé",
    )


def item_performer(claim: dict[str, Any], item: dict[str, Any]) -> str | None:
    """``Type/id`` of who performed an item: its first care team member, else the claim's provider."""
    by_sequence = {m.get("sequence"): m for m in claim.get("careTeam") or []}
    for seq in item.get("careTeamSequence") or []:
        ref = local_reference(((by_sequence.get(seq) or {}).get("provider") or {}).get("reference"))
        if ref:
            return ref
    return local_reference((claim.get("provider") or {}).get("reference"))
