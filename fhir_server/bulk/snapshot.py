"""The resources of an export as they were at its ``transactionTime`` T, read from the history collection.

Every write appends its version to ``history`` and stamps the version it replaces with ``until`` (the
new version's lastUpdated), so the version of a resource current at T is the one written at or before
T and not replaced by T: ``lu <= T and (no until or until > T)``. That set never changes once T has
passed, whatever is written during the export; so it is a consistent snapshot, and a scan of it by
``_id`` (``Type/id/version``) can stop and resume at any ``_id`` without missing or repeating anything.
The caller's access filter applies as on ``_history``: the DMP policy and patient scopes look only at
``comp`` and ``pol``, which every version keeps.

``_typeFilter`` queries are compiled by the search compiler and run on the current collection's index
fields; a resource whose current version is not its version at T (it changed after the kick-off) has
its version at T indexed into a scratch collection and the same compiled query run there, so the filter
judges the exported version and nothing else. (Chained parameters inside a ``_typeFilter`` resolve
their targets as they are now.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fhir_server.search.compiler import Filter
from fhir_server.search.index import derive
from fhir_server.storage.indexes import HISTORY
from fhir_server.storage.lead import find_in, stream_led
from fhir_server.storage.repository import Repository

Document = dict[str, Any]
_FIELDS = {"id": 1, "v": 1, "lu": 1, "res": 1}


def _and(parts: list[Filter | None]) -> Filter:
    kept = [p for p in parts if p]
    if not kept:
        return {}
    return kept[0] if len(kept) == 1 else {"$and": kept}


def _window(tt: datetime, since: datetime | None, until: datetime | None) -> Filter:
    upper = min(tt, until) if until is not None else tt
    lu: Filter = {"$lte": upper}
    if since is not None:
        lu["$gt"] = since
    return {"lu": lu, "$or": [{"until": {"$exists": False}}, {"until": {"$gt": tt}}]}


# Patients per scan of a Patient or Group export: SecantusDB pays for each listed value on every
# candidate document, so many short ``$in`` lists read a large group several times faster than one long.
PATIENTS_PER_SCAN = 8


class Snapshot:
    """Reads one export's versions at T: ``batches`` of live resources, ``deletions`` for ``_since``.

    A type's versions are read by ``_id``; in a Patient or Group export, for a few patients at a time
    (a version in the compartments of several is read with the first of them). Each document read
    carries ``at``, the resume point after it: its ``_id``, prefixed by its group of patients.
    """

    def __init__(
        self,
        repo: Repository,
        tt: datetime,
        since: datetime | None,
        until: datetime | None,
        patients: list[str] | None,
        scratch: str,
        batch_size: int = 1000,
    ) -> None:
        self.repo = repo
        self.db = repo.db
        self.window = _window(tt, since, until)
        self.scratch = scratch
        self.batch_size = batch_size
        self.groups: list[list[str]] | None = None
        self._group_of: dict[str, int] = {}
        if patients is not None:
            self.groups = [
                patients[i : i + PATIENTS_PER_SCAN] for i in range(0, len(patients), PATIENTS_PER_SCAN)
            ]
            for n, group in enumerate(self.groups):
                for pid in group:
                    self._group_of.setdefault(pid, n)

    async def batches(
        self, rtype: str, access: Filter | None, type_filter: Filter | None, after: str | None
    ) -> AsyncIterator[list[Document]]:
        """History documents of ``rtype`` at T, after the resume point ``after``, in batches."""
        base: Filter = {"op": {"$ne": "delete"}, **self.window}
        async for batch in self._scan(rtype, base, access, after, _FIELDS):
            if type_filter is not None:
                batch = await self.matching(rtype, batch, type_filter)
            yield batch

    async def patient_batches(
        self, scans: dict[str, tuple[Filter | None, str | None]]
    ) -> AsyncIterator[tuple[str, list[Document]]]:
        """A Patient or Group export's live versions at T of several types at once, as (type, batch):
        one scan per group of patients, not one per type and group. ``scans`` gives each type's access
        filter and resume point; a type gets only what comes after its own resume point."""
        async for item in self._by_groups({"op": {"$ne": "delete"}, **self.window}, scans, _FIELDS):
            yield item

    async def deletions(
        self, rtype: str, access: Filter | None, after: str | None
    ) -> AsyncIterator[list[Document]]:
        """Deletion tombstones of ``rtype`` current at T (within ``_since``), after ``after``."""
        base: Filter = {"t": rtype, "op": "delete", **self.window}
        async for batch in self._scan(rtype, base, access, after, {"id": 1, "lu": 1}):
            yield batch

    async def _scan(
        self,
        rtype: str,
        base: Filter,
        access: Filter | None,
        after: str | None,
        fields: Document,
    ) -> AsyncIterator[list[Document]]:
        """The documents of ``rtype`` matching ``base`` and ``access``, after the resume point ``after``:
        led by the type (SecantusDB answers a range of ``_id`` alone by scanning the whole collection),
        or by each group of patients."""
        if self.groups is not None:
            async for _, batch in self._by_groups(base, {rtype: (access, after)}, fields):
                yield batch
            return
        ids: Filter = {"$gt": after or f"{rtype}/", "$lt": f"{rtype}0"}
        async for batch in self._stream(_and([{**base, "_id": ids}, access]), {"t": rtype}, fields):
            for doc in batch:
                doc["at"] = doc["_id"]
            yield batch

    async def _by_groups(
        self, base: Filter, scans: dict[str, tuple[Filter | None, str | None]], fields: Document
    ) -> AsyncIterator[tuple[str, list[Document]]]:
        """The documents matching ``base`` of the types of ``scans`` (each with its access filter and
        resume point), as (type, batch), read group of patients by group. A version in the compartments
        of several groups is read with the first."""
        assert self.groups is not None
        if not scans:
            return
        points = {t: _resume_point(after) if after else (0, "") for t, (_, after) in scans.items()}
        kinds = [_and([{"t": t}, access]) for t, (access, _) in scans.items()]
        query = _and([base, kinds[0] if len(kinds) == 1 else {"$or": kinds}])
        fields = {**fields, "t": 1, "comp": 1}
        for n in range(min(group for group, _ in points.values()), len(self.groups)):
            lead = {"comp": {"$in": self.groups[n]}}
            async for batch in self._stream(_and([query, lead]), lead, fields):
                by_type: dict[str, list[Document]] = {}
                for doc in batch:
                    rtype = doc.pop("t")
                    first = min((self._group_of.get(p, n) for p in doc.pop("comp", None) or []), default=n)
                    group, last = points[rtype]
                    if first < n or n < group or (n == group and doc["_id"] <= last):
                        continue
                    doc["at"] = f"{n} {doc['_id']}"
                    by_type.setdefault(rtype, []).append(doc)
                for rtype, docs in by_type.items():
                    yield rtype, docs

    async def _stream(self, query: Filter, lead: Filter, fields: Document) -> AsyncIterator[list[Document]]:
        """The history documents matching ``query`` (led by ``lead``), by ``_id``, in batches."""
        cursor = await stream_led(
            self.db,
            HISTORY,
            query,
            lead,
            projection=fields,
            sort=[("_id", 1)],
            batch_size=self.batch_size,
        )
        while batch := await cursor.to_list(self.batch_size):
            yield batch

    async def matching(self, rtype: str, batch: list[Document], type_filter: Filter) -> list[Document]:
        """Those of ``batch`` whose version at T matches ``type_filter``."""
        ids = [d["id"] for d in batch]
        found = await find_in(self.db, rtype, "_id", ids, type_filter, projection={"v": 1})
        matched = {d["_id"]: d["v"] for d in found}
        unsure = [d["id"] for d in batch if matched.get(d["id"]) != d["v"]]
        current = {
            d["_id"]: d["v"] for d in await find_in(self.db, rtype, "_id", unsure, projection={"v": 1})
        }
        changed = [d for d in batch if d["id"] in unsure and current.get(d["id"]) != d["v"]]
        again = await self._match_past(rtype, changed, type_filter) if changed else set()
        return [d for d in batch if matched.get(d["id"]) == d["v"] or d["id"] in again]

    async def _match_past(self, rtype: str, docs: list[Document], type_filter: Filter) -> set[str]:
        """Index past versions in the scratch collection and run the filter there."""
        scratch = self.db[self.scratch]
        rows = []
        for d in docs:
            derived = derive(rtype, d["id"], d["res"])
            rows.append({"_id": d["id"], "idx": derived.index, "comp": derived.compartments, "del": False})
        await scratch.insert_many(rows)
        try:
            ids = [r["_id"] for r in rows]
            found = await find_in(self.db, self.scratch, "_id", ids, type_filter, projection={"_id": 1})
            return {d["_id"] for d in found}
        finally:
            await scratch.delete_many({"_id": {"$in": [r["_id"] for r in rows]}})

    async def drop_scratch(self) -> None:
        await self.db[self.scratch].drop()


def _resume_point(after: str) -> tuple[int, str]:
    """(group of patients, last ``_id`` read) of a Patient or Group export's resume point."""
    group, _, last = after.partition(" ")
    return int(group), last
