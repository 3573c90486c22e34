"""What a professional's policy is built from, remembered between requests until it changes.

A professional authorized by thousands of patients would otherwise read thousands of Consents (and the
patients they attend) on every request. Each input of a policy has a *generation* counter in MongoDB
(``policy_generations``), raised in the same transaction as any write that can change it:

- ``act|Practitioner/x``: a Consent naming that actor was written (authorizations, blocks);
- ``pur|BTG`` (``ETREAT``, ``HRESCH``): a Consent with that purpose was written (refusals of a mode);
- ``gp|Practitioner/x``: a Patient naming (or no longer naming) that attending doctor was written.

A request reads the generations of the inputs it needs (one indexed query) and reuses what it computed
for the same generations, in this process, so a committed change is seen by the next request, whatever
process made it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.auth.labels import local_reference
from fhir_server.storage.lead import find_led

GENERATIONS = "policy_generations"
_MAX_ENTRIES = 10_000
_remembered: dict[tuple[str, str], tuple[int, Any]] = {}


def changed_inputs(
    rtype: str, labels: Iterable[dict[str, Any]], resources: Iterable[dict[str, Any] | None]
) -> set[str]:
    """The policy inputs a write changes, from the policy labels and the content of the versions it
    replaces and writes."""
    keys: set[str] = set()
    if rtype == "Consent":
        for pol in labels:
            keys.update(f"act|{a}" for a in pol.get("act") or [])
            keys.update(f"pur|{p}" for p in pol.get("pur") or [])
    elif rtype == "Patient":
        for res in resources:
            for gp in (res or {}).get("generalPractitioner") or []:
                ref = local_reference(gp.get("reference") if isinstance(gp, dict) else None, "Practitioner")
                if ref:
                    keys.add(f"gp|{ref}")
    return keys


async def bump(db: AsyncDatabase[dict[str, Any]], keys: Iterable[str], session: AsyncClientSession) -> None:
    """Raise the generations of ``keys`` inside the write's transaction."""
    for key in sorted(keys):
        await db[GENERATIONS].update_one({"_id": key}, {"$inc": {"g": 1}}, upsert=True, session=session)


async def remembered(
    db: AsyncDatabase[dict[str, Any]], computes: dict[str, Callable[[], Awaitable[Any]]]
) -> dict[str, Any]:
    """The value of each input (key → how to compute it), reused while its generation is unchanged."""
    keys = sorted(computes)
    rows = await find_led(db, GENERATIONS, {"_id": {"$in": keys}}, {"_id": {"$in": keys}})
    generation = {r["_id"]: int(r.get("g", 0)) for r in rows}
    out: dict[str, Any] = {}
    for key in keys:
        slot, gen = (db.name, key), generation.get(key, 0)
        hit = _remembered.get(slot)
        if hit is not None and hit[0] == gen:
            out[key] = hit[1]
            continue
        out[key] = await computes[key]()
        if len(_remembered) >= _MAX_ENTRIES:
            _remembered.clear()
        _remembered[slot] = (gen, out[key])
    return out
