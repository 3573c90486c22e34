"""The research transformation: what a client with the *research* role receives instead of the DMP data.

Documented rule by rule in docs/research-export.md. In short: ids, references and identifiers become
keyed pseudonyms (HMAC-SHA256 with the server's secret, so one person keeps one pseudonym across
exports); names, telecom, photos, street lines, cities, narrative and other free text, reference
displays and attachment content are removed; postal codes are cut to the département and birth dates
to the year; every resource is labelled ``PSEUDED``. Pure functions: no database, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

Json = dict[str, Any]

PSEUDONYM_SYSTEM = "urn:dmp-fhir:pseudonym"
SECURITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
PSEUDED = {"system": SECURITY_SYSTEM, "code": "PSEUDED", "display": "pseudonymized"}

# Types never given to research: raw document content, and the access traces (who looked at what).
EXCLUDED_TYPES = frozenset({"Binary", "AuditEvent"})

# Top-level elements removed outright, per type (who a person is and how to reach them).
_PERSON_TYPES = frozenset({"Patient", "Practitioner", "RelatedPerson", "Person"})
_DROPPED_TOP = {
    **{t: frozenset({"name", "photo", "contact"}) for t in _PERSON_TYPES},
    "Organization": frozenset({"name", "alias", "contact"}),
    "Group": frozenset({"name"}),
}
# Removed wherever they appear: contact points, free text, narrative and anything contained.
_DROPPED_ANYWHERE = frozenset({"telecom", "text", "note", "comment", "description", "contained", "photo"})
_DROPPED_VALUES = frozenset(
    {"valueString", "valueMarkdown", "valueHumanName", "valueContactPoint", "valueAttachment"}
)
_ATTACHMENT_KEPT = ("contentType", "language", "creation")
_OVERSEAS = ("97", "98")


class Pseudonymizer:
    """Turns ids, references and identifiers into pseudonyms with one secret key."""

    def __init__(self, secret: bytes, base: str = "") -> None:
        self._key = secret
        self._base = base.rstrip("/") + "/" if base else ""

    def _digest(self, kind: str, value: str) -> str:
        mac = hmac.new(self._key, f"{kind}\x1f{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:40]

    def resource_id(self, rtype: str, rid: str) -> str:
        """The pseudonymous id of ``rtype/rid`` (a valid FHIR id: 40 hex characters)."""
        return self._digest("id", f"{rtype}/{rid}")

    def identifier(self, system: str, value: str) -> str:
        """The pseudonym of an identifier value (INS, RPPS, invoice number…) within its system."""
        return self._digest("identifier", f"{system}|{value}")

    def reference(self, ref: str) -> str | None:
        """A literal reference rewritten to the pseudonymous id; None for one that cannot be kept
        (contained, ``urn:`` or on another server)."""
        local = ref[len(self._base) :] if self._base and ref.startswith(self._base) else ref
        parts = local.split("/")
        if len(parts) in (2, 4) and parts[0][:1].isupper() and "://" not in local and ":" not in parts[0]:
            rtype, rid = parts[0], parts[1]
            return f"{rtype}/{self.resource_id(rtype, rid)}"
        return None

    # -- the transformation ----------------------------------------------------------------------

    def transform(self, resource: Json) -> Json:
        """The de-identified copy of ``resource`` (the input is not modified)."""
        rtype = str(resource.get("resourceType", ""))
        dropped = _DROPPED_TOP.get(rtype, frozenset())
        out: Json = {}
        for key, value in resource.items():
            if key in dropped or key in _DROPPED_ANYWHERE or key in _DROPPED_VALUES:
                continue
            if key == "id" and isinstance(value, str):
                out["id"] = self.resource_id(rtype, value)
            elif key == "meta":
                out["meta"] = _meta(value)
            elif key == "birthDate" and isinstance(value, str):
                out["birthDate"] = value[:4]
            elif key == "deceasedDateTime" and isinstance(value, str):
                out["deceasedDateTime"] = value[:4]
            elif key.startswith("_") and key[1:] in dropped | _DROPPED_ANYWHERE:
                continue
            else:
                new = self._value(key, value)
                if new is not None:
                    out[key] = new
        if "meta" not in out:
            out["meta"] = _meta({})
        return out

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._value(key, v) for v in value]
            kept = [i for i in items if i is not None and i != {}]
            return kept or None
        if not isinstance(value, dict):
            return value
        if key in ("identifier", "valueIdentifier"):
            return self._identifier(value)
        if key in ("address", "valueAddress"):
            return _address(value)
        if key == "attachment":
            return {k: value[k] for k in _ATTACHMENT_KEPT if k in value} or None
        out: Json = {}
        for k, v in value.items():
            # A Reference's display is free text (often a person's name); a Coding's is terminology.
            is_reference = "reference" in value or "identifier" in value
            if k in _DROPPED_ANYWHERE or k in _DROPPED_VALUES or (k == "display" and is_reference):
                continue
            if k == "reference" and isinstance(v, str):
                ref = self.reference(v)
                if ref is not None:
                    out[k] = ref
                continue
            new = self._value(k, v)
            if new is not None:
                out[k] = new
        return out or None

    def _identifier(self, ident: Json) -> Json | None:
        value = ident.get("value")
        if not isinstance(value, str):
            return None
        return {"system": PSEUDONYM_SYSTEM, "value": self.identifier(str(ident.get("system", "")), value)}


def _meta(meta: Any) -> Json:
    """Only what says how to read the data: profiles and security labels, plus ``PSEUDED``."""
    meta = meta if isinstance(meta, dict) else {}
    out: Json = {k: meta[k] for k in ("lastUpdated", "profile") if k in meta}
    security = [s for s in meta.get("security") or [] if isinstance(s, dict) and s.get("code") != "PSEUDED"]
    out["security"] = [*security, dict(PSEUDED)]
    return out


def _address(address: Json) -> Json | None:
    """Country and département only: the postal code cut to its first two digits (three overseas)."""
    out: Json = {k: address[k] for k in ("use", "type", "country") if k in address}
    postal = address.get("postalCode")
    if isinstance(postal, str) and postal.strip():
        code = postal.strip()
        out["postalCode"] = code[:3] if code.startswith(_OVERSEAS) else code[:2]
    return out or None
