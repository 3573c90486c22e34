"""Resource storage: current versions per type, an append-only history, optimistic version checks.

Layout (one collection per resource type, plus ``history``)::

    <Type>   {_id: id, v: version, lu: lastUpdated, del: bool, res: resource JSON | None,
              idx: {param: index values}, srt: {param: sort key}, comp: [patient ids]}
    history  {_id: "Type/id/v", t, id, v, lu, until: next version's lu, op: create|update|delete,
              res: resource JSON | None}

A write runs in a multi-document transaction: it appends the version to ``history``, stamps the
previous version's ``until`` (so ``_at`` is an index query) and replaces the current document only if
it still holds the version the caller read. Two writers of one version: the loser's transaction fails
with a write conflict and is retried by the driver, then sees the new version.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.read_concern import ReadConcern

from fhir_server.storage.client import DURABLE, Document, Mongo
from fhir_server.storage.indexes import HISTORY
from fhir_server.storage.lead import Lead, count_led, find_in, find_led, narrowed

T = TypeVar("T")
Session = AsyncClientSession

_CURRENT_FIELDS = {"v": 1, "lu": 1, "del": 1, "res": 1}


class VersionConflict(Exception):
    """The current version changed between read and write (another writer won)."""


@dataclass(frozen=True)
class Record:
    """One version of one resource as storage holds it."""

    rtype: str
    id: str
    version: int
    last_updated: datetime
    deleted: bool
    resource: dict[str, Any] | None
    op: str | None = None

    @classmethod
    def from_current(cls, rtype: str, doc: Document) -> Record:
        return cls(rtype, doc["_id"], doc["v"], doc["lu"], bool(doc.get("del")), doc.get("res"))

    @classmethod
    def from_history(cls, doc: Document) -> Record:
        return cls(doc["t"], doc["id"], doc["v"], doc["lu"], doc["op"] == "delete", doc.get("res"), doc["op"])


@dataclass(frozen=True)
class NewVersion:
    """What a write stores: the resource (None for a delete) and its derived search data."""

    rtype: str
    id: str
    version: int
    last_updated: datetime
    op: str
    resource: dict[str, Any] | None
    index: Mapping[str, Any]
    sort_keys: Mapping[str, Any]
    compartments: list[str]
    # Policy labels (fhir_server.auth.labels), kept on past versions too so history obeys the policy.
    labels: Mapping[str, Any] = field(default_factory=dict)

    def history_document(self) -> Document:
        """This version as the history collection keeps it."""
        return {
            "_id": f"{self.rtype}/{self.id}/{self.version}",
            "t": self.rtype,
            "id": self.id,
            "v": self.version,
            "lu": self.last_updated,
            "op": self.op,
            "res": self.resource,
            # Kept on past versions too, so that history can be confined to a patient's compartment.
            "comp": self.compartments,
            "pol": dict(self.labels),
        }

    def current_document(self) -> Document:
        """This version as the type's collection keeps it while it is current."""
        return {
            "_id": self.id,
            "v": self.version,
            "lu": self.last_updated,
            "del": self.resource is None,
            "res": self.resource,
            "idx": dict(self.index),
            "srt": dict(self.sort_keys),
            "comp": self.compartments,
            "pol": dict(self.labels),
        }


@dataclass(frozen=True)
class HistoryQuery:
    """Which versions a ``_history`` request asks for, newest first."""

    rtype: str | None = None
    id: str | None = None
    since: datetime | None = None
    at_start: datetime | None = None
    at_end: datetime | None = None
    # Keyset cursor: return versions strictly older than (lu, _id) of the last one seen.
    after: tuple[datetime, str] | None = None
    count: int = 50
    # The caller's access (see fhir_server.auth.access.Access.history_filter); None for everything.
    restrict: Mapping[str, Any] | None = None


class Repository:
    """The only code that reads and writes resources in MongoDB."""

    def __init__(self, mongo: Mongo) -> None:
        self.mongo = mongo
        self.db = mongo.db

    async def in_transaction(self, fn: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``fn`` in one multi-document transaction, retried on transient conflicts."""
        async with self.mongo.client.start_session() as session:
            return await session.with_transaction(
                fn, read_concern=ReadConcern("snapshot"), write_concern=DURABLE
            )

    async def current(self, rtype: str, rid: str, session: Session | None = None) -> Record | None:
        """The current version of a resource (possibly a deletion tombstone), or None."""
        doc = await self.db[rtype].find_one({"_id": rid}, _CURRENT_FIELDS, session=session)
        return Record.from_current(rtype, doc) if doc else None

    async def current_many(
        self, rtype: str, ids: list[str], session: Session | None = None
    ) -> dict[str, Record]:
        """The current versions (tombstones included) of those of ``ids`` that exist, by id."""
        docs = await find_in(self.db, rtype, "_id", ids, projection=_CURRENT_FIELDS, session=session)
        return {d["_id"]: Record.from_current(rtype, d) for d in docs}

    async def version(
        self, rtype: str, rid: str, version: int, session: Session | None = None
    ) -> Record | None:
        """One historical version, or None."""
        doc = await self.db[HISTORY].find_one({"_id": f"{rtype}/{rid}/{version}"}, session=session)
        return Record.from_history(doc) if doc else None

    async def put(self, new: NewVersion, previous: int | None, session: Session) -> None:
        """Store ``new`` as the current version, provided the current one is still ``previous``.

        Must run inside :meth:`in_transaction`. Raises :class:`VersionConflict` when another writer
        changed the resource since it was read.
        """
        coll = self.db[new.rtype]
        await self.db[HISTORY].insert_one(new.history_document(), session=session)
        doc = new.current_document()
        if previous is None:
            await coll.insert_one(doc, session=session)
            return
        await self.db[HISTORY].update_one(
            {"_id": f"{new.rtype}/{new.id}/{previous}"},
            {"$set": {"until": new.last_updated}},
            session=session,
        )
        result = await coll.replace_one({"_id": new.id, "v": previous}, doc, session=session)
        if result.matched_count != 1:
            raise VersionConflict(f"{new.rtype}/{new.id} is no longer at version {previous}")

    async def put_many(self, versions: list[NewVersion], session: Session | None) -> None:
        """Store first versions of new resources in bulk (inside :meth:`in_transaction`, or with no
        session for append-only records such as traces).

        A resource that already exists makes the whole batch fail with a duplicate-key error.
        """
        by_type: dict[str, list[Document]] = {}
        history: list[Document] = []
        for new in versions:
            history.append(new.history_document())
            by_type.setdefault(new.rtype, []).append(new.current_document())
        if history:
            await self.db[HISTORY].insert_many(history, ordered=False, session=session)
        for rtype, docs in by_type.items():
            await self.db[rtype].insert_many(docs, ordered=False, session=session)

    async def find(
        self,
        rtype: str,
        query: Mapping[str, Any],
        limit: int,
        session: Session | None = None,
        lead: Lead | None = None,
    ) -> list[Record]:
        """Live (not deleted) resources of ``rtype`` matching a compiled index query."""
        docs = await find_led(
            self.db,
            rtype,
            {**query, "del": False},
            lead,
            projection=_CURRENT_FIELDS,
            limit=limit,
            session=session,
        )
        return [Record.from_current(rtype, d) for d in docs]

    async def find_by(
        self, rtype: str, field: str, values: Sequence[Any], session: Session | None = None
    ) -> list[Record]:
        """Live resources of ``rtype`` whose stored ``field`` (``idx.<param>``, ``comp``) holds one of
        ``values``: bulk lookups by identifier or patient, however many values."""
        docs = await find_in(
            self.db, rtype, field, values, {"del": False}, projection=_CURRENT_FIELDS, session=session
        )
        return [Record.from_current(rtype, d) for d in docs]

    async def exists(
        self, collection: str, key: str, restrict: Mapping[str, Any], session: Session | None = None
    ) -> bool:
        """Whether the document ``key`` of ``collection`` (a type's, or ``history``) matches ``restrict``."""
        query = {"$and": [{"_id": key}, dict(restrict)]}
        found = await find_led(
            self.db, collection, query, {"_id": key}, projection={"_id": 1}, session=session
        )
        return bool(found)

    async def documents_citing_binary(
        self, rid: str, session: Session | None = None
    ) -> tuple[dict[str, Any], list[str]] | None:
        """The policy labels and compartments of a live DocumentReference whose content is Binary ``rid``."""
        found = await find_led(
            self.db,
            "DocumentReference",
            {"pol.bin": rid, "del": False},
            {"pol.bin": rid},
            projection={"pol": 1, "comp": 1},
            limit=1,
            session=session,
        )
        return (found[0].get("pol") or {}, found[0].get("comp") or []) if found else None

    async def label_binaries(
        self, ids: list[str], labels: Mapping[str, Any], comp: list[str], session: Session
    ) -> None:
        """Give the current versions of these Binaries the labels and compartments of their document."""
        if ids:
            await self.db["Binary"].update_many(
                {"_id": {"$in": ids}}, {"$set": {"pol": dict(labels), "comp": comp}}, session=session
            )

    async def history(self, q: HistoryQuery) -> tuple[list[Record], int | None]:
        """Versions newest first, and the total when it is cheap to know (instance level)."""
        filt: dict[str, Any] = {}
        if q.rtype:
            filt["t"] = q.rtype
        if q.id:
            filt["id"] = q.id
        lu: dict[str, Any] = {}
        if q.since:
            lu["$gte"] = q.since
        if q.at_end:
            # Versions current at some moment of [at_start, at_end): written before its end and
            # superseded (if ever) after its start.
            lu["$lt"] = q.at_end
            filt["$or"] = [{"until": {"$exists": False}}, {"until": {"$gt": q.at_start}}]
        if lu:
            filt["lu"] = lu
        if q.restrict is not None:
            filt = {"$and": [filt, dict(q.restrict)]} if filt else dict(q.restrict)
        # Instance history is led by the (type, id) equalities of the instance_versions index.
        lead = {k: v for k, v in (("t", q.rtype), ("id", q.id)) if v} or None
        total = await count_led(self.db, HISTORY, filt, lead) if q.id else None
        if q.after:
            after_lu, after_id = q.after
            keyset = {"$or": [{"lu": {"$lt": after_lu}}, {"lu": after_lu, "_id": {"$lt": after_id}}]}
            filt = {"$and": [filt, keyset]} if filt else keyset
        order = [("lu", DESCENDING), ("_id", DESCENDING)]
        docs = await find_led(self.db, HISTORY, filt, lead, sort=order, limit=q.count)
        return [Record.from_history(d) for d in docs], total


async def field_values(
    repo: Repository,
    rtype: str,
    query: Mapping[str, Any],
    field: str,
    limit: int,
    session: Session | None = None,
    lead: Lead | None = None,
) -> list[Any]:
    """The values of ``field`` (``_id`` or an index field, arrays flattened) over live matches."""
    docs = await find_led(
        repo.db, rtype, {**query, "del": False}, lead, projection={field: 1}, limit=limit, session=session
    )
    out: list[Any] = []
    path = field.split(".")
    for doc in docs:
        value: Any = doc
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, list):
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


async def find_page(
    repo: Repository,
    rtype: str,
    query: Mapping[str, Any],
    sort: list[tuple[str, int]],
    limit: int,
    with_index: bool = False,
    session: Session | None = None,
    lead: Lead | None = None,
) -> list[tuple[Record, Document]]:
    """Live matches in ``sort`` order, at most ``limit``; each with its stored document (``srt``, and
    ``idx`` when ``with_index``) for cursors and includes."""
    projection = {**_CURRENT_FIELDS, "srt": 1, **({"idx": 1} if with_index else {})}
    docs = await find_led(
        repo.db,
        rtype,
        {**query, "del": False},
        lead,
        projection=projection,
        sort=sort,
        limit=limit,
        session=session,
    )
    return [(Record.from_current(rtype, d), d) for d in docs]


async def narrow(
    repo: Repository,
    rtype: str,
    query: Mapping[str, Any],
    lead: Lead | None,
    session: Session | None = None,
) -> tuple[Mapping[str, Any], Lead | None]:
    """``query`` with its long ``$in`` lists cut to what its matches hold, and the lead to run it with
    (storage/lead.py): for a caller running several queries on the same matches."""
    return await narrowed(repo.db, rtype, {**query, "del": False}, lead, session)


async def count(
    repo: Repository,
    rtype: str,
    query: Mapping[str, Any],
    session: Session | None = None,
    lead: Lead | None = None,
) -> int:
    """How many live resources match."""
    return await count_led(repo.db, rtype, {**query, "del": False}, lead, session)
