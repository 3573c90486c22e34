"""Traces: an AuditEvent (FHIR R4) for every read, search, write, operation and refusal (DMP rule:
every access is traced and the patient reads the traces).

A trace is written durably before the answer leaves: writes put theirs in their own transaction, so
the data and its trace commit together; reads and searches wait for theirs, which concurrent requests
share in one ``insert_many`` (group commit), so tracing costs one durable write per batch of requests
rather than per request. A request whose trace cannot be written fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fhir_server.fhir.dates import instant, now_ms

if TYPE_CHECKING:
    from fhir_server.auth.policy import AccessMode
    from fhir_server.storage.repository import NewVersion, Record, Repository, Session

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
FLAG_SYSTEM = "https://dmp-fhir.org/CodeSystem/audit-flag"
CLIENT_SYSTEM = "urn:dmp-fhir:client"
# restful-interaction code -> AuditEvent.action
_ACTIONS = {
    "read": "R",
    "vread": "R",
    "search-type": "E",
    "search-system": "E",
    "search-compartment": "E",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "create": "C",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "operation": "E",
}
SUCCESS, MINOR_FAILURE = "0", "4"


@dataclass(frozen=True)
class Caller:
    """Who a trace names: the Practitioner/Patient of the token (``fhirUser``) or its client."""

    who: str | None
    client_id: str | None
    role: str | None
    address: str | None

    def agent(self) -> dict[str, Any]:
        agent: dict[str, Any] = {"requestor": True}
        if self.who:
            agent["who"] = {"reference": self.who}
        elif self.client_id:
            agent["who"] = {"identifier": {"system": CLIENT_SYSTEM, "value": self.client_id}}
        else:
            agent["who"] = {"display": "server operator (authorization off)"}
        if self.client_id:
            agent["altId"] = self.client_id
        if self.role:
            agent["role"] = [{"text": self.role}]
        if self.address:
            agent["network"] = {"address": self.address, "type": "2"}
        return agent


def audit_event(
    caller: Caller,
    mode: AccessMode,
    interaction: str,
    outcome: str,
    patients: Iterable[str],
    entities: Iterable[str] = (),
    description: str | None = None,
    query: str | None = None,
) -> dict[str, Any]:
    """The AuditEvent of one request."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": INTERACTION, "code": interaction.split(":", 1)[0]}],
        "action": _ACTIONS.get(interaction.split(":", 1)[0], "E"),
        "recorded": instant(now_ms()),
        "outcome": outcome,
        "purposeOfEvent": [{"coding": [{"system": ACT_REASON, "code": mode.purpose}]}],
        "agent": [caller.agent()],
        "source": {"observer": {"display": "dmp-fhir"}},
    }
    if description or mode.reason:
        event["outcomeDesc"] = "; ".join(
            x for x in (description, mode.reason and f"reason: {mode.reason}") if x
        )
    if mode.name != "normal":
        # Flagged so the patient can find every emergency access to their record (_tag search).
        event["meta"] = {"tag": [{"system": FLAG_SYSTEM, "code": mode.name}]}
    items: list[dict[str, Any]] = [
        {
            "what": {"reference": f"Patient/{pid}"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
        }
        for pid in sorted(set(patients))
    ]
    items += [
        {
            "what": {"reference": ref},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4"},
        }
        for ref in entities
    ]
    if query:
        items.append({"name": "query", "description": query[:2000]})
    if interaction.startswith("operation:"):
        items.append({"name": "operation", "description": interaction.split(":", 1)[1]})
    if items:
        event["entity"] = items
    return event


def _stored(event: dict[str, Any]) -> NewVersion:
    from fhir_server.fhir.rest import new_id, new_version

    return new_version("AuditEvent", new_id(), event, "create", 1, now_ms())


@dataclass
class AuditTrail:
    """Writes traces: in a write's transaction, or grouped with concurrent requests' traces."""

    repo: Repository
    _pending: list[tuple[NewVersion, asyncio.Future[None]]] = field(default_factory=list)
    _flushing: bool = False

    async def write_in(self, event: dict[str, Any], session: Session) -> None:
        """Write ``event`` inside the caller's transaction (commits with the data it traces)."""
        await self.repo.put_many([_stored(event)], session)

    async def write(self, event: dict[str, Any]) -> None:
        """Write ``event`` durably; returns once it is on disk (shared with concurrent traces)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((_stored(event), future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self.repo.put_many([v for v, _ in batch], None)
                except Exception as exc:
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                else:
                    for _, f in batch:
                        if not f.done():
                            f.set_result(None)
        finally:
            self._flushing = False


def patients_of(records: Iterable[Record]) -> set[str]:
    """The patients whose compartments hold these records (what a search or history returned)."""
    from fhir_server.search.index import patient_compartments

    out: set[str] = set()
    for rec in records:
        if rec.resource is not None:
            out.update(patient_compartments(rec.rtype, rec.id, rec.resource))
    return out


@dataclass
class Audit:
    """The tracing of one request: who asks, in which mode, and where traces go."""

    trail: AuditTrail
    caller: Caller
    mode: AccessMode

    async def record(
        self,
        interaction: str,
        patients: Iterable[str],
        entities: Iterable[str] = (),
        outcome: str = SUCCESS,
        description: str | None = None,
        query: str | None = None,
        session: Session | None = None,
    ) -> None:
        """Trace one interaction (in ``session`` when it is part of a write)."""
        event = audit_event(
            self.caller, self.mode, interaction, outcome, patients, entities, description, query
        )
        if session is not None:
            await self.trail.write_in(event, session)
        else:
            await self.trail.write(event)

    async def returned(self, interaction: str, records: Iterable[Record], query: str | None = None) -> None:
        """Trace a search or history: one event listing the patients whose data were returned."""
        await self.record(interaction, patients_of(records), query=query)
