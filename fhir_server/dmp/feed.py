"""Staged extract lines → resources of a DMP, inside the caller's transaction.

Used by the import (lines of NIRs whose DMP is open become resources at once; those of a closed DMP
wait) and by the lifecycle's opening hook (:func:`feed_opened`): when a DMP is created, reopened or
newly carries an INS, the staged lines of the last ``FHIR_REIMBURSEMENT_HISTORY_MONTHS`` months become
resources in the same transaction, so nobody ever sees an open DMP without its history.

Resources are written at ids derived from invoice numbers (fhir_server.dmp.reimbursement), each
validated and indexed like any write; one identical to what is stored is left alone, so importing the
same lines again writes nothing. Professionals and establishments are found by RPPS and FINESS, or
created once.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhir_server.dmp import store, systems
from fhir_server.dmp.extract import Row
from fhir_server.dmp.lifecycle import DmpOpened
from fhir_server.dmp.medications import derived_statements, is_pharmacy
from fhir_server.dmp.reimbursement import (
    Parties,
    cnam_organization,
    coverage,
    invoice_resources,
    new_organization,
    new_practitioner,
)
from fhir_server.dmp.staging import StagedRow, mark_applied, rows_of
from fhir_server.fhir.dates import now_ms
from fhir_server.fhir.rest import new_version
from fhir_server.fhir.validation import validate_resource
from fhir_server.search.index import patient_compartments
from fhir_server.storage.repository import NewVersion, Record, Repository, Session

Json = dict[str, Any]
INS_SYSTEMS = (systems.INS_NIR, systems.INS_NIA)


def ins_values(patient: Json | None) -> set[str]:
    """The INS (NIR or NIA) values a Patient carries."""
    out: set[str] = set()
    for ident in (patient or {}).get("identifier") or []:
        if (
            isinstance(ident, dict)
            and ident.get("system") in INS_SYSTEMS
            and isinstance(ident.get("value"), str)
        ):
            out.add(ident["value"].upper())
    return out


def months_before(day: date, months: int) -> date:
    """The same day ``months`` months earlier (the last day of that month when it is shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


class Feeder:
    """Writes the resources of staged lines for patients with a DMP. Lookups of professionals and
    establishments are remembered across transactions once committed (:meth:`commit`)."""

    def __init__(self, repo: Repository, today: date) -> None:
        self.repo = repo
        self.today = today
        self.known: dict[tuple[str, str], str] = {}
        self._pending: dict[tuple[str, str], str] = {}
        self.written: Counter[str] = Counter()
        self._counted: Counter[str] = Counter()

    def begin(self) -> None:
        """Start (or restart, when the driver retries it) a transaction."""
        self._pending = {}
        self._counted = Counter()

    def commit(self) -> None:
        """The transaction committed: what it created is known, what it wrote is counted."""
        self.known.update(self._pending)
        self.written.update(self._counted)
        self.begin()

    async def patients_for(self, nirs: Iterable[str], session: Session | None) -> dict[str, str]:
        """The Patient id of each of these NIRs whose DMP is open (a closed one accepts no data: its
        lines wait for its reopening)."""
        wanted = set(nirs)
        keys = [f"{s}|{n}" for n in sorted(wanted) for s in INS_SYSTEMS]
        out: dict[str, str] = {}
        for rec in await self.repo.find_by("Patient", "idx.identifier", keys, session):
            for nir in ins_values(rec.resource) & wanted:
                out.setdefault(nir, rec.id)
        closed = await store.closed_of(self.repo, sorted(set(out.values())), session)
        return {nir: pid for nir, pid in out.items() if pid not in closed}

    async def _resolve(
        self, rtype: str, system: str, values: set[str], session: Session
    ) -> tuple[dict[str, str], list[Json]]:
        """The resource id of each identifier value, and the bodies of those to create."""
        found = {v: self.known.get((system, v)) or self._pending.get((system, v)) for v in values}
        missing = sorted(v for v, rid in found.items() if rid is None)
        new: list[Json] = []
        if missing:
            keys = [f"{system}|{v}" for v in missing]
            for rec in await self.repo.find_by(rtype, "idx.identifier", keys, session):
                for ident in (rec.resource or {}).get("identifier") or []:
                    v = ident.get("value")
                    if ident.get("system") == system and v in found and found[v] is None:
                        found[v] = rec.id
                        self.known[(system, v)] = rec.id
            for v in missing:
                if found[v] is None:
                    body = new_practitioner(v) if rtype == "Practitioner" else new_organization(v)
                    found[v] = body["id"]
                    self._pending[(system, v)] = body["id"]
                    new.append(body)
        return {v: rid for v, rid in found.items() if rid}, new

    async def apply(
        self,
        staged: dict[str, list[StagedRow]],
        patients: dict[str, str],
        session: Session,
        touched: set[str] | None,
    ) -> None:
        """Write the resources of the invoices in ``touched`` (all staged ones when None) of every NIR
        of ``patients`` (the caller records the lines as applied), and derive again the MedicationStatements of the patients with pharmacy lines.
        Lines of earlier extracts count for the statements only once applied to the DMP."""
        selected: dict[str, list[Row]] = {}
        considered: dict[str, list[Row]] = {}
        for nir, pid in patients.items():
            rows = staged.get(nir, [])
            chosen = [s.row for s in rows if touched is None or s.row["invoice_id"] in touched]
            if chosen:
                selected[nir] = chosen
                considered[nir] = [
                    s.row for s in rows if s.pid == pid or touched is None or s.row["invoice_id"] in touched
                ]
        if not selected:
            return
        all_rows = [r for rows in selected.values() for r in rows]
        rpps = {r["performer_id"] for r in all_rows if r["performer_kind"] == "PS"}
        rpps |= {r["prescriber_rpps"] for r in all_rows if r["prescriber_rpps"]}
        finess = {r["performer_id"] for r in all_rows if r["performer_kind"] == "ETAB"}
        practitioners, new_p = await self._resolve("Practitioner", systems.RPPS, rpps, session)
        organizations, new_o = await self._resolve("Organization", systems.FINESS, finess, session)
        bodies: list[Json] = [cnam_organization(), *new_p, *new_o]
        derive_for: list[str] = []
        for nir, rows in selected.items():
            pid = patients[nir]
            parties = Parties(pid, practitioners, organizations)
            bodies.append(coverage(pid))
            by_invoice: dict[str, list[Row]] = {}
            for r in rows:
                by_invoice.setdefault(r["invoice_id"], []).append(r)
            for invoice_id, lines in by_invoice.items():
                bodies.extend(invoice_resources(invoice_id, lines, parties))
            if any(is_pharmacy(r) for r in rows):
                derive_for.append(pid)
                bodies.extend(derived_statements(pid, considered[nir], self.today))
        obsolete = await self._obsolete_statements(derive_for, {b["id"] for b in bodies}, session)
        await self._write(bodies, obsolete, session)

    async def _obsolete_statements(self, patients: list[str], keep: set[str], session: Session) -> list[str]:
        """Derived statements of these patients that the new derivation no longer gives (periods merged)."""
        if not patients:
            return []
        found = await self.repo.find_by("MedicationStatement", "comp", patients, session)
        return [
            rec.id
            for rec in found
            if rec.id not in keep
            and any(
                i.get("system") == systems.DERIVED_MEDICATION
                for i in (rec.resource or {}).get("identifier") or []
            )
        ]

    async def _write(self, bodies: list[Json], deletions: list[str], session: Session) -> None:
        """Store the bodies that differ from what is stored, and delete the obsolete statements.

        Validating and indexing a version costs more than storing it: the versions are built in a
        thread, a chunk at a time, while the database stores the chunk before (one operation of the
        session in flight at a time)."""
        by_type: dict[str, dict[str, Json | None]] = {}
        for body in bodies:
            by_type.setdefault(body["resourceType"], {})[body["id"]] = body
        for rid in deletions:
            by_type.setdefault("MedicationStatement", {})[rid] = None
        changes: list[_Change] = []
        for rtype, group in by_type.items():
            current = await self.repo.current_many(rtype, list(group), session)
            for rid, body in group.items():
                cur = current.get(rid)
                stored = cur.resource if cur is not None and not cur.deleted else None
                if stored is None and body is None:
                    continue
                if stored is not None and body is not None and _same(stored, body):
                    continue
                changes.append(_Change(rtype, rid, body, cur))
        now = now_ms()
        chunks = [changes[i : i + _CHUNK] for i in range(0, len(changes), _CHUNK)]
        if not chunks:
            return
        built = await asyncio.to_thread(_versions, chunks[0], now)
        for n in range(len(chunks)):
            storing = asyncio.ensure_future(self._store(built, session))
            try:
                if n + 1 < len(chunks):
                    built = await asyncio.to_thread(_versions, chunks[n + 1], now)
            except BaseException:
                with contextlib.suppress(Exception):
                    await storing
                raise
            await storing

    async def _store(self, versions: list[tuple[NewVersion, int | None]], session: Session) -> None:
        """Store built versions (``previous``: the version each replaces, None for a creation)."""
        for new, previous in versions:
            if previous is not None:
                await self.repo.put(new, previous, session)
        await self.repo.put_many([new for new, previous in versions if previous is None], session)
        for new, _ in versions:
            self._counted[f"{new.rtype} deleted" if new.resource is None else new.rtype] += 1


@dataclass(frozen=True)
class _Change:
    """A resource to write: its new body (None: delete it) and its current version, if any."""

    rtype: str
    rid: str
    body: Json | None
    current: Record | None


# Versions built per chunk: large enough to keep the database busy while the next chunk is built.
_CHUNK = 200


def _versions(changes: list[_Change], now: datetime) -> list[tuple[NewVersion, int | None]]:
    """The stored versions of ``changes`` (each body validated), with the version each replaces."""
    out: list[tuple[NewVersion, int | None]] = []
    for c in changes:
        cur = c.current
        if cur is None:
            assert c.body is not None
            out.append(
                (new_version(c.rtype, c.rid, validate_resource(c.body, c.rtype), "create", 1, now), None)
            )
            continue
        was_in = patient_compartments(c.rtype, c.rid, cur.resource) if cur.resource else None
        if c.body is None:
            gone = new_version(c.rtype, c.rid, None, "delete", cur.version + 1, now, was_in)
            out.append((gone, cur.version))
        else:
            body = validate_resource(c.body, c.rtype)
            out.append(
                (new_version(c.rtype, c.rid, body, "update", cur.version + 1, now, was_in), cur.version)
            )
    return out


def _same(stored: Json, body: Json) -> bool:
    return {k: v for k, v in stored.items() if k != "meta"} == body


async def feed_dmp(
    repo: Repository, patient: Json, session: Session, months: int, today: date
) -> Counter[str]:
    """Turn the staged lines of the last ``months`` months of the INS this Patient carries into
    resources of its DMP, in the caller's transaction; what was written, per type. Lines already
    written are left alone, so feeding again writes only what arrived since."""
    nirs = ins_values(patient)
    if not nirs:
        return Counter()
    staged = await rows_of(repo.mongo, nirs, session, since=months_before(today, months).isoformat())
    feeder = Feeder(repo, today)
    await feeder.apply(staged, dict.fromkeys(staged, patient["id"]), session, None)
    await mark_applied(
        repo.mongo, {patient["id"]: [s.row for rows in staged.values() for s in rows]}, session
    )
    feeder.commit()
    return feeder.written


async def feed_opened(event: DmpOpened) -> None:
    """The opening hook (fhir_server.dmp.lifecycle): a DMP created, reopened or newly identified by an
    INS gets its staged reimbursement history in the transaction that opens it."""
    service = event.service
    await feed_dmp(service.repo, event.resource, event.session, service.history_months, date.today())
