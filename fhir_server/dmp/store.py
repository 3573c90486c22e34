"""The DMP's own collections, and the aggregations over DMPs: the only DMP code that talks to MongoDB.

::

    dmp      {_id: Patient id, opened: datetime, channel: code | None, closed: datetime | None,
              reason: str | None}                     one per DMP, written with the Patient
    dmp_ins  {_id: "system|value", patient: id}      the claim of an INS by one DMP

``dmp_ins`` makes "one DMP per INS" atomic: the claim is inserted in the transaction that writes the
Patient, and ``_id`` is unique, so of two concurrent openings with the same INS exactly one commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.storage.indexes import HISTORY
from fhir_server.storage.lead import find_in, find_led
from fhir_server.storage.repository import Repository, Session

STATE = "dmp"
CLAIMS = "dmp_ins"
Doc = dict[str, Any]


class ClaimTaken(Exception):
    """The INS ``key`` is claimed by another DMP (``owner``; None when a concurrent writer just won)."""

    def __init__(self, key: str, owner: str | None) -> None:
        super().__init__(f"{key}: {owner or 'another DMP'}")
        self.key = key
        self.owner = owner


async def ensure_dmp_indexes(repo: Repository) -> None:
    """Indexes of the purge (idempotent; created by the purge itself, before it looks)."""
    await repo.db[STATE].create_indexes([IndexModel([("closed", ASCENDING)], name="dmp_closed")])
    await repo.db[CLAIMS].create_indexes([IndexModel([("patient", ASCENDING)], name="dmp_ins_patient")])


async def claim_ins(repo: Repository, keys: Iterable[str], pid: str, session: Session) -> None:
    """Claim each INS key for Patient ``pid``; :class:`ClaimTaken` when another DMP holds one."""
    for key in keys:
        held = await repo.db[CLAIMS].find_one({"_id": key}, session=session)
        if held is not None:
            if held["patient"] != pid:
                raise ClaimTaken(key, held["patient"])
            continue
        try:
            await repo.db[CLAIMS].insert_one({"_id": key, "patient": pid}, session=session)
        except DuplicateKeyError as exc:
            raise ClaimTaken(key, None) from exc


async def release_ins(repo: Repository, keys: Iterable[str], pid: str, session: Session) -> None:
    """Give up the claims of ``pid`` on these INS keys."""
    keys = list(keys)
    if keys:
        await repo.db[CLAIMS].delete_many({"_id": {"$in": keys}, "patient": pid}, session=session)


async def owner_of(repo: Repository, key: str) -> str | None:
    """The Patient holding an INS key (outside any transaction: after a lost race)."""
    doc = await repo.db[CLAIMS].find_one({"_id": key})
    return doc["patient"] if doc else None


async def state(repo: Repository, pid: str, session: Session | None = None) -> Doc | None:
    """The lifecycle state of the DMP of Patient ``pid``."""
    return await repo.db[STATE].find_one({"_id": pid}, session=session)


async def save_state(repo: Repository, pid: str, changes: Doc, session: Session) -> None:
    """Set fields of the state of ``pid`` (created when missing, e.g. a Patient older than the rules)."""
    await repo.db[STATE].update_one({"_id": pid}, {"$set": changes}, upsert=True, session=session)


async def drop_state(repo: Repository, pid: str, session: Session) -> None:
    """Forget the lifecycle state of the DMP of Patient ``pid`` (its INS claims are released apart)."""
    await repo.db[STATE].delete_one({"_id": pid}, session=session)


async def closed_among(repo: Repository, pids: list[str], session: Session | None) -> Doc | None:
    """One closed DMP among these Patients, if any."""
    if not pids:
        return None
    query = {"_id": {"$in": pids}, "closed": {"$type": "date"}}
    found = await find_led(repo.db, STATE, query, {"_id": {"$in": pids}}, limit=1, session=session)
    return found[0] if found else None


async def closed_of(repo: Repository, pids: list[str], session: Session | None) -> set[str]:
    """Those of these Patients whose DMP is closed."""
    query = {"closed": {"$type": "date"}}
    found = await find_in(repo.db, STATE, "_id", pids, query, projection={"_id": 1}, session=session)
    return {d["_id"] for d in found}


async def closed_before(repo: Repository, cutoff: datetime) -> list[Doc]:
    """DMPs closed before ``cutoff``, oldest closing first."""
    cursor = repo.db[STATE].find({"closed": {"$lt": cutoff}}).sort("closed", ASCENDING)
    return [d async for d in cursor]


# -- purge ---------------------------------------------------------------------------------------


@dataclass
class DmpFootprint:
    """What a DMP holds: current documents per type and versions in history."""

    current: dict[str, int]
    versions: int

    @property
    def resources(self) -> int:
        return sum(self.current.values())


def _of_patient(rtype: str, pid: str) -> Doc:
    return {"$or": [{"_id": pid}, {"comp": pid}]} if rtype == "Patient" else {"comp": pid}


def _history_of(pid: str) -> Doc:
    return {"$or": [{"comp": pid}, {"t": "Patient", "id": pid}]}


async def footprint(repo: Repository, pid: str, session: Session | None = None) -> DmpFootprint:
    """Count what purging the DMP of ``pid`` would remove."""
    current = {}
    for rtype in SERVED_TYPES:
        n = await repo.db[rtype].count_documents(_of_patient(rtype, pid), session=session)
        if n:
            current[rtype] = n
    versions = await repo.db[HISTORY].count_documents(_history_of(pid), session=session)
    return DmpFootprint(current, versions)


async def purge_dmp(repo: Repository, pid: str, session: Session) -> DmpFootprint:
    """Remove every version of every resource of the DMP of ``pid``, its state and INS claims (inside
    the caller's transaction, before the purge's own trace is written)."""
    current = {}
    for rtype in SERVED_TYPES:
        result = await repo.db[rtype].delete_many(_of_patient(rtype, pid), session=session)
        if result.deleted_count:
            current[rtype] = result.deleted_count
    versions = (await repo.db[HISTORY].delete_many(_history_of(pid), session=session)).deleted_count
    await drop_state(repo, pid, session)
    await repo.db[CLAIMS].delete_many({"patient": pid}, session=session)
    return DmpFootprint(current, versions)


# -- statistics ----------------------------------------------------------------------------------


async def statistics(repo: Repository) -> Doc:
    """The operators' figures, each computed by the database: DMPs per channel and per month (with
    their channels), closed DMPs, and how many live documents each DMP holds."""
    by_channel = repo.db[STATE].aggregate(
        [
            {
                "$group": {
                    "_id": "$channel",
                    "opened": {"$sum": 1},
                    "closed": {"$sum": {"$cond": [{"$eq": [{"$type": "$closed"}, "date"]}, 1, 0]}},
                }
            },
            {"$sort": {"_id": 1}},
        ]
    )
    by_month = repo.db[STATE].aggregate(
        [
            {
                "$group": {
                    "_id": {
                        "month": {"$dateToString": {"format": "%Y-%m", "date": "$opened"}},
                        "channel": "$channel",
                    },
                    "opened": {"$sum": 1},
                }
            },
            {"$sort": {"_id.month": 1, "_id.channel": 1}},
        ]
    )
    # Documents per DMP: live DocumentReferences grouped by the DMP they belong to, then DMPs grouped
    # by how many they hold (the distribution); DMPs without any document are the rest of the total.
    per_dmp = repo.db["DocumentReference"].aggregate(
        [
            {"$match": {"del": False}},
            {"$unwind": "$comp"},
            {"$group": {"_id": "$comp", "documents": {"$sum": 1}}},
            {"$lookup": {"from": STATE, "localField": "_id", "foreignField": "_id", "as": "dmp"}},
            {"$match": {"dmp": {"$ne": []}}},
            {"$group": {"_id": "$documents", "dmps": {"$sum": 1}}},
            {"$sort": {"_id": 1}},
        ]
    )
    return {
        "channels": [d async for d in await by_channel],
        "months": [d async for d in await by_month],
        "documents": [d async for d in await per_dmp],
    }
