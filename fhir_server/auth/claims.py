"""The claims an access token carries about its subject.

For a professional they are read from the linked Practitioner resource at each issue, never stored on
the user: ``rpps`` (identifier of system RPPS), ``profession`` (the TRE_G15 qualification code) and
``specialty`` (the first qualification code of another system, e.g. TRE_R38).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.auth.accounts import Client, User
from fhir_server.auth.store import LaunchContext

RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
PROFESSION_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"


def _codes(resource: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for qual in resource.get("qualification") or []:
        for coding in (qual.get("code") or {}).get("coding") or []:
            if isinstance(coding.get("system"), str) and isinstance(coding.get("code"), str):
                out.append((coding["system"], coding["code"]))
    return out


def professional_claims(practitioner: dict[str, Any] | None) -> dict[str, str]:
    """``rpps``, ``profession`` and ``specialty`` of a Practitioner resource (those it has)."""
    if not practitioner:
        return {}
    claims: dict[str, str] = {}
    for ident in practitioner.get("identifier") or []:
        if ident.get("system") == RPPS_SYSTEM and isinstance(ident.get("value"), str):
            claims["rpps"] = ident["value"]
            break
    codes = _codes(practitioner)
    profession = next((c for s, c in codes if s == PROFESSION_SYSTEM), None)
    specialty = next((c for s, c in codes if s != PROFESSION_SYSTEM), None)
    if profession:
        claims["profession"] = profession
    if specialty:
        claims["specialty"] = specialty
    return claims


async def practitioner_resource(db: AsyncDatabase[dict[str, Any]], rid: str) -> dict[str, Any] | None:
    """The current, not deleted Practitioner ``rid``."""
    doc = await db["Practitioner"].find_one({"_id": rid, "del": False}, {"res": 1})
    return doc["res"] if doc else None


async def practitioner_by_rpps(db: AsyncDatabase[dict[str, Any]], rpps: str) -> str | None:
    """The id of the live Practitioner with this RPPS identifier."""
    # The token search index stores identifiers as "system|value" (fhir_server.search.kinds.token).
    doc = await db["Practitioner"].find_one(
        {"idx.identifier": f"{RPPS_SYSTEM}|{rpps}", "del": False}, {"_id": 1}
    )
    return doc["_id"] if doc else None


async def patient_exists(db: AsyncDatabase[dict[str, Any]], rid: str) -> bool:
    return await db["Patient"].count_documents({"_id": rid, "del": False}, limit=1) == 1


async def user_claims(
    db: AsyncDatabase[dict[str, Any]], user: User, client: Client, scope: str, context: LaunchContext
) -> dict[str, Any]:
    """Access-token claims for ``user`` using ``client``."""
    claims: dict[str, Any] = {
        "sub": user.id,
        "client_id": client.client_id,
        "scope": scope,
        "role": user.role,
        "fhirUser": user.fhir_user,
        "patient": context.patient,
        "encounter": context.encounter,
    }
    if user.practitioner:
        claims.update(professional_claims(await practitioner_resource(db, user.practitioner)))
    return claims


def client_claims(client: Client, scope: str) -> dict[str, Any]:
    """Access-token claims for a backend client acting on its own behalf."""
    return {"sub": client.client_id, "client_id": client.client_id, "scope": scope, "role": client.role}


async def userinfo(db: AsyncDatabase[dict[str, Any]], user: User) -> dict[str, Any]:
    """The OpenID Connect userinfo of ``user``: who they are here, and their professional claims."""
    info: dict[str, Any] = {"sub": user.id, "preferred_username": user.username, "role": user.role}
    if user.fhir_user:
        info["fhirUser"] = user.fhir_user
    if user.practitioner:
        info.update(professional_claims(await practitioner_resource(db, user.practitioner)))
    return info
