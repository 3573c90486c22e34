"""The staging collection of imported extract lines, per NIR (docs/reimbursement-extract.md).

Every checked line is kept here, keyed by NIR, invoice and line number, so importing a line again
replaces it rather than adding one::

    reimbursement_staging  {_id: "nir|invoice|line", nir, inv, care: "YYYY-MM-DD", row: {columns},
                            at: first imported, pid: Patient id once written as resources, or None}

Lines of a NIR without a DMP wait here; when the DMP is opened, those of the last months become
resources (fhir_server.dmp.feed). Only this module reads and writes the collection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, IndexModel, UpdateMany, UpdateOne

from fhir_server.dmp.extract import Line, Row
from fhir_server.storage.client import Mongo
from fhir_server.storage.lead import find_in
from fhir_server.storage.repository import Session

STAGING = "reimbursement_staging"
_BY_NIR = "nir_care"


@dataclass(frozen=True)
class StagedRow:
    """A staged line and the Patient it was applied to (None while it waits for a DMP)."""

    row: Row
    pid: str | None


def staging_key(row: Row) -> str:
    return f"{row['nir']}|{row['invoice_id']}|{row['line_no']}"


async def ensure_staging_indexes(mongo: Mongo) -> None:
    """The index every read of the staging collection runs on: NIR, then care date."""
    await mongo.db[STAGING].create_indexes(
        [IndexModel([("nir", ASCENDING), ("care", ASCENDING)], name=_BY_NIR)]
    )


async def stage(
    mongo: Mongo, lines: Sequence[Line], patients: dict[str, str], now: datetime, session: Session
) -> None:
    """Store these lines, those of ``patients`` (NIR → Patient id) as applied to that DMP: new ones
    inserted in bulk, changed ones updated (keeping ``at``), identical ones left alone."""
    if not lines:
        return
    coll = mongo.db[STAGING]
    wanted = {staging_key(line.row): line for line in lines}
    found = await find_in(
        mongo.db, STAGING, "_id", list(wanted), projection={"row": 1, "pid": 1}, session=session
    )
    stored = {d["_id"]: d for d in found}
    new, changed = [], []
    for key, line in wanted.items():
        pid = patients.get(line.row["nir"])
        old = stored.get(key)
        if old is None:
            new.append(
                {"_id": key, "nir": line.row["nir"], "inv": line.invoice, "care": line.row["care_date"]}
                | {"row": line.row, "at": now, "pid": pid}
            )
        elif old["row"] != line.row or (pid is not None and old.get("pid") != pid):
            fields = {"care": line.row["care_date"], "row": line.row, **({"pid": pid} if pid else {})}
            changed.append(UpdateOne({"_id": key}, {"$set": fields}))
    if new:
        await coll.insert_many(new, ordered=False, session=session)
    if changed:
        await coll.bulk_write(changed, ordered=False, session=session)


async def rows_of(
    mongo: Mongo, nirs: Iterable[str], session: Session | None, since: str | None = None
) -> dict[str, list[StagedRow]]:
    """The staged lines of these NIRs (care date on or after ``since`` when given), per NIR."""
    query = {"care": {"$gte": since}} if since is not None else None
    out: dict[str, list[StagedRow]] = {}
    for doc in await find_in(
        mongo.db, STAGING, "nir", sorted(set(nirs)), query, projection={"row": 1, "pid": 1}, session=session
    ):
        row = doc["row"]
        out.setdefault(row["nir"], []).append(StagedRow(row, doc.get("pid")))
    return out


async def mark_applied(mongo: Mongo, applied: dict[str, list[Row]], session: Session) -> None:
    """Record that these lines are now resources of their Patient (``applied``: Patient id → lines)."""
    ops = [
        UpdateMany({"_id": {"$in": [staging_key(r) for r in rows]}}, {"$set": {"pid": pid}})
        for pid, rows in applied.items()
    ]
    if ops:
        await mongo.db[STAGING].bulk_write(ops, ordered=False, session=session)
