"""The DMP rules for one request, compiled once into MongoDB filters (DESIGN.md, docs/access-rules.md).

``scopes ∩ matrix ∩ patient's consent ∪ special rules``: :class:`Access` intersects the filter of its
scopes with :meth:`Policy.filter`. Every filter here looks only at ``comp`` (patient compartments) and
``pol`` (policy labels, fhir_server.auth.labels), which past versions keep too, so the same filter
confines search, includes, counts, history and export.

Who is who comes from the token: ``role`` (patient, representative, practitioner, cnam, research…),
``fhirUser`` (``Practitioner/…`` for a professional), ``profession``/``specialty`` (TRE_G15 and a
specialty code), ``patient`` (launch context). The access mode comes from the request headers
``X-DMP-Access-Mode`` and ``X-DMP-Access-Reason``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.auth.labels import (
    INVISIBLE_TO_PATIENT,
    INVISIBLE_TO_REPRESENTATIVES,
    MASKED_FROM_PROFESSIONALS,
    VISIBILITY_SYSTEM,
    local_reference,
)
from fhir_server.auth.matrix import Entry, Matrix
from fhir_server.auth.policy_cache import remembered
from fhir_server.fhir.errors import BadRequest, Forbidden
from fhir_server.search.registry import compartment_params
from fhir_server.storage.lead import distinct_led, find_led

Filter = dict[str, Any]
DENY: Filter = {"_id": {"$in": []}}

NORMAL = "normal"
EMERGENCY = "bris-de-glace"
REGULATION = "centre-regulation"
MODES = (NORMAL, EMERGENCY, REGULATION)
# The v3-ActReason purpose a patient refuses to refuse each special mode, and that the trace records.
MODE_PURPOSE = {NORMAL: "TREAT", EMERGENCY: "BTG", REGULATION: "ETREAT"}
RESEARCH_PURPOSE = "HRESCH"
SHARED_TYPES = frozenset({"Practitioner", "PractitionerRole", "Organization", "Medication"})
DOCUMENT_TYPES = frozenset({"DocumentReference", "Binary"})
PATIENT_ROLES = ("patient", "representative")


def in_compartment(rtype: str) -> bool:
    return rtype == "Patient" or rtype in compartment_params()


def both(a: Filter | None, b: Filter | None) -> Filter | None:
    """The intersection of two filters (None = everything)."""
    if a is None:
        return b
    if b is None:
        return a
    if a is DENY or b is DENY:
        return DENY
    return {"$and": [a, b]}


@dataclass(frozen=True)
class AccessMode:
    """How the request asks to be let in: normal, or one of the emergency modes with its reason."""

    name: str = NORMAL
    reason: str | None = None

    @property
    def purpose(self) -> str:
        return MODE_PURPOSE[self.name]

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> AccessMode:
        name = (headers.get("x-dmp-access-mode") or NORMAL).strip().lower()
        # HTTP header values are ASCII: a reason with accents comes percent-encoded (UTF-8).
        reason = unquote(headers.get("x-dmp-access-reason") or "").strip() or None
        if name not in MODES:
            raise BadRequest(
                f"X-DMP-Access-Mode '{name}' is not one of {', '.join(MODES)}", expression="X-DMP-Access-Mode"
            )
        if name != NORMAL and reason is None:
            raise BadRequest(
                f"the {name} access mode needs a reason in X-DMP-Access-Reason",
                expression="X-DMP-Access-Reason",
            )
        return cls(name, reason)


@dataclass
class Policy:
    """The DMP rules for one caller. ``kind``: professional, patient, representative, research, role
    (a role of the matrix such as cnam) or refused."""

    kind: str
    matrix: Matrix
    mode: AccessMode = field(default_factory=AccessMode)
    who: str | None = None
    entry: Entry | None = None
    patient: str | None = None
    # Professionals: patients they may see (normal mode), or may not (special modes).
    allowed: frozenset[str] = frozenset()
    excluded: frozenset[str] | None = None
    attending: frozenset[str] = frozenset()
    refusal: str | None = None
    # Built once: every type's filter of the request holds it, and a professional's list is long.
    _entered: Filter | None = field(default=None, init=False, repr=False, compare=False)

    # -- whose DMP ---------------------------------------------------------------------------------

    def patients(self) -> Filter:
        """The compartments this caller may enter (callers must not change the filter)."""
        if self._entered is None:
            if self.kind in PATIENT_ROLES:
                self._entered = {"comp": self.patient}
            elif self.excluded is not None:
                self._entered = {"comp": {"$nin": sorted(self.excluded)}}
            else:
                self._entered = {"comp": {"$in": sorted(self.allowed)}}
        return self._entered

    def may_enter(self, pid: str) -> bool:
        """Whether this caller may see anything of Patient ``pid``'s DMP."""
        if self.kind in PATIENT_ROLES:
            return pid == self.patient
        if self.kind == "professional":
            return pid not in self.excluded if self.excluded is not None else pid in self.allowed
        if self.kind == "research":
            return self.excluded is None or pid not in self.excluded
        return self.kind == "role"

    def check_document_change(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """A patient (or representative) changes only the masking of a document they did not write:
        403 for any other change (DOMAIN.md: masking is a write of the security labels only)."""
        if self.kind not in PATIENT_ROLES or old is None:
            return
        me = f"Patient/{self.patient}"
        if me in {local_reference((a or {}).get("reference")) for a in old.get("author") or []}:
            return
        if _without_masking(old) != _without_masking(new):
            raise Forbidden(
                "a patient may only mask or unmask a document written by a professional "
                f"(the {MASKED_FROM_PROFESSIONALS} label in meta.security)",
                code="forbidden",
            )

    # -- per type ----------------------------------------------------------------------------------

    def filter(self, rtype: str, write: bool) -> Filter | None:
        """What of ``rtype`` this caller may read (or write): None for all, DENY for nothing."""
        if self.kind == "refused":
            return DENY
        if self.kind == "role":
            role = self.entry
            allowed = role.write.resources if write else role.read.resources
            return None if role is not None and rtype in allowed else DENY
        if self.kind == "research":
            if write:
                return DENY
            return self.patients() if in_compartment(rtype) or rtype in DOCUMENT_TYPES else None
        if self.kind in PATIENT_ROLES:
            return self._patient_filter(rtype, write)
        return self._professional_filter(rtype, write)

    def _patient_filter(self, rtype: str, write: bool) -> Filter | None:
        if write and rtype not in self.matrix.patient_write:
            return DENY
        if rtype in SHARED_TYPES:
            return None if not write else DENY
        if not (in_compartment(rtype) or rtype in DOCUMENT_TYPES):
            return DENY
        hidden = [INVISIBLE_TO_PATIENT]
        if self.kind == "representative":
            hidden.append(INVISIBLE_TO_REPRESENTATIVES)
        if rtype in DOCUMENT_TYPES and not write:
            return {"$and": [self.patients(), {"pol.sec": {"$nin": hidden}}]}
        return self.patients()

    def _professional_filter(self, rtype: str, write: bool) -> Filter | None:
        entry = self.entry
        assert entry is not None and self.who is not None
        rights = entry.write if write else entry.read
        common = self.matrix.common_write if write else self.matrix.common_read
        me = self.who
        if rtype == "AuditEvent":
            return DENY if write else {"pol.agt": me}
        if rtype == "Consent":
            # A professional declares (and may revoke) the patient's authorization of themselves; a
            # block naming them is the patient's and stays out of their reach.
            mine = {"pol.act": me, "pol.eff": "permit"}
            return mine if write else {"$or": [self.patients(), {"pol.act": me}]}
        if rtype == "Binary" and write:
            # Content may arrive before the document that labels it (transactions in any order).
            return {"$or": [{"comp": {"$size": 0}}, self.patients()]}
        if rtype in DOCUMENT_TYPES:
            if not rights.documents:
                return DENY
            parts: list[Filter] = [self.patients()]
            if not rights.all_documents:
                parts.append({"pol.doc": {"$in": sorted(rights.documents)}})
            if write and rights.own_documents_only:
                parts.append({"pol.aut": me})
            if not write:
                seen = [{"pol.sec": {"$ne": MASKED_FROM_PROFESSIONALS}}, {"pol.aut": me}]
                if self.attending:
                    seen.append({"comp": {"$in": sorted(self.attending)}})
                parts.append({"$or": seen})
            return {"$and": parts}
        if rtype not in rights.resources and rtype not in common:
            return DENY
        if in_compartment(rtype):
            return self.patients()
        return None


def _without_masking(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    for key in ("versionId", "lastUpdated"):
        meta.pop(key, None)
    security = [
        c
        for c in meta.get("security") or []
        if not (c.get("system") == VISIBILITY_SYSTEM and c.get("code") == MASKED_FROM_PROFESSIONALS)
    ]
    if security:
        meta["security"] = security
    else:
        meta.pop("security", None)
    return {**{k: v for k, v in resource.items() if k != "meta"}, "meta": meta}


# -- building the policy of a request ------------------------------------------------------------


async def _professional(
    db: AsyncDatabase[dict[str, Any]], matrix: Matrix, claims: dict[str, Any], mode: AccessMode, base: str
) -> Policy:
    entry = matrix.for_professional(text_claim(claims.get("profession")), text_claim(claims.get("specialty")))
    who = local_reference(claims.get("fhirUser"), "Practitioner")
    if entry.refused:
        return Policy("refused", matrix, mode, who, entry, refusal=f"{entry.label}: no access to the DMP")
    if who is None:
        return Policy(
            "refused", matrix, mode, refusal="a professional's token must name its Practitioner (fhirUser)"
        )
    if mode.name != NORMAL and mode.name not in entry.modes:
        raise Forbidden(f"the {mode.name} access mode is not open to {entry.label}", code="forbidden")
    refs = [who, f"{base}/{who}"] if base else [who]

    async def consents() -> tuple[frozenset[str], frozenset[str]]:
        permitted: set[str] = set()
        blocked: set[str] = set()
        mine = {"pol.act": who, "pol.on": True, "del": False}
        for doc in await find_led(db, "Consent", mine, {"pol.act": who}, projection={"comp": 1, "pol": 1}):
            effect = (doc.get("pol") or {}).get("eff")
            (permitted if effect == "permit" else blocked if effect == "deny" else set()).update(
                doc.get("comp") or []
            )
        return frozenset(permitted), frozenset(blocked)

    async def attended() -> frozenset[str]:
        gp = {"idx.general-practitioner": {"$in": refs}}
        return frozenset(await distinct_led(db, "Patient", "_id", {**gp, "del": False}, gp))

    computes: dict[str, Callable[[], Awaitable[Any]]] = {f"act|{who}": consents, f"gp|{who}": attended}
    if mode.name != NORMAL:
        computes[f"pur|{mode.purpose}"] = lambda: _refusing(db, mode.purpose)
    inputs = await remembered(db, computes)
    permitted, blocked = inputs[f"act|{who}"]
    attending = inputs[f"gp|{who}"]
    if mode.name == NORMAL:
        return Policy(
            "professional", matrix, mode, who, entry, allowed=permitted - blocked, attending=attending
        )
    excluded = blocked | inputs[f"pur|{mode.purpose}"]
    return Policy("professional", matrix, mode, who, entry, excluded=excluded, attending=attending)


async def _refusing(db: AsyncDatabase[dict[str, Any]], purpose: str) -> frozenset[str]:
    """The patients with an active refusal of ``purpose`` (an emergency mode, research)."""
    query = {"pol.pur": purpose, "pol.eff": "deny", "pol.on": True, "del": False}
    return frozenset(await distinct_led(db, "Consent", "comp", query, {"pol.pur": purpose}))


def text_claim(value: object) -> str | None:
    """A claim's value when it is a non-empty string."""
    return value if isinstance(value, str) and value else None


async def build_policy(
    db: AsyncDatabase[dict[str, Any]], matrix: Matrix, claims: dict[str, Any], mode: AccessMode, base: str
) -> Policy | None:
    """The policy of a verified token's claims; None for operators and system clients without a DMP
    role (their scopes alone decide)."""
    role = text_claim(claims.get("role"))
    if role in PATIENT_ROLES:
        if mode.name != NORMAL:
            raise Forbidden(f"the {mode.name} access mode is for professionals", code="forbidden")
        return Policy(role or "patient", matrix, mode, patient=text_claim(claims.get("patient")))
    if role == "research":
        key = f"pur|{RESEARCH_PURPOSE}"
        objecting = (await remembered(db, {key: lambda: _refusing(db, RESEARCH_PURPOSE)}))[key]
        return Policy("research", matrix, mode, excluded=objecting)
    if role is not None and (entry := matrix.role(role)) is not None:
        if entry.refused:
            return Policy(
                "refused", matrix, mode, entry=entry, refusal=f"{entry.label}: no access to the DMP"
            )
        return Policy("role", matrix, mode, entry=entry)
    if role == "practitioner" or claims.get("profession"):
        return await _professional(db, matrix, claims, mode, base)
    if mode.name != NORMAL:
        raise Forbidden(f"the {mode.name} access mode is for professionals", code="forbidden")
    return None
