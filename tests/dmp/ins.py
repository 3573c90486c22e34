"""Valid, never-repeated INS for tests (NIR key written out here, independently of the code)."""

from __future__ import annotations

import itertools
import random
from datetime import date
from typing import Any

from tests.conftest import patient

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
CHANNEL_URL = "https://dmp-fhir.org/StructureDefinition/dmp-creation-channel"
CHANNEL_SYSTEM = "https://dmp-fhir.org/CodeSystem/dmp-creation-channel"
CLOSURE_URL = "https://dmp-fhir.org/StructureDefinition/dmp-closure"

# A random start, then a counter: unique within a test session, different from one session to the next.
_SERIAL = itertools.count(random.Random().randrange(10**6))


def keyed(body: str) -> str:
    """``body`` (13 characters) followed by its key: 97 - number mod 97, 2A -> 19, 2B -> 18."""
    number = int(body.replace("2A", "19").replace("2B", "18"))
    return f"{body}{97 - number % 97:02d}"


def fresh_nir(gender: str = "female", birth: str = "1980-04-12", dept: str | None = None) -> str:
    """A NIR no other test uses, consistent with ``gender`` and ``birth`` (YYYY-MM-DD)."""
    n = next(_SERIAL) % 10**8
    dept = dept or f"{10 + n // 10**6:02d}"
    sex = "1" if gender == "male" else "2"
    return keyed(f"{sex}{birth[2:4]}{birth[5:7]}{dept}{n % 10**6:06d}")


def dmp_patient(nir: str | None = None, channel: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Patient (female, born 1980-04-12) with an INS-NIR and optionally a creation channel."""
    res = patient(identifier=[{"use": "official", "system": INS_NIR, "value": nir or fresh_nir()}], **extra)
    if channel:
        res["extension"] = [
            {"url": CHANNEL_URL, "valueCoding": {"system": CHANNEL_SYSTEM, "code": channel}},
            *res.get("extension", []),
        ]
    return res


def closed(res: dict[str, Any], reason: str = "à la demande du patient") -> dict[str, Any]:
    """``res`` as its closing update: inactive, with the closure extension."""
    ext = {
        "url": CLOSURE_URL,
        "extension": [
            {"url": "date", "valueDate": date.today().isoformat()},
            {"url": "reason", "valueString": reason},
        ],
    }
    return {**res, "active": False, "extension": [*res.get("extension", []), ext]}


def reopened(res: dict[str, Any]) -> dict[str, Any]:
    """``res`` as its reopening update: active, without the closure extension."""
    ext = [e for e in res.get("extension", []) if e["url"] != CLOSURE_URL]
    out = {**res, "active": True, "extension": ext}
    if not ext:
        del out["extension"]
    return out
