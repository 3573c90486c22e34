"""``fhir-server purge-closed``: remove the DMPs closed longer ago than the retention period.

A DMP closed for more than ``FHIR_DMP_RETENTION_YEARS`` (10) years is removed entirely: every version
(current collections and ``history``) of every resource of its patient compartment, its lifecycle state
and its INS claims (docs/dmp-lifecycle.md). Each DMP goes in one transaction with the AuditEvent that
records its purge; that trace names the Patient id by identifier, not by reference, so it is in no
patient compartment and no later purge removes it. ``--dry-run`` counts what would go and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TextIO

from fhir_server.auth.audit import AuditTrail, Caller, audit_event
from fhir_server.auth.policy import AccessMode
from fhir_server.dmp import store
from fhir_server.fhir.dates import instant
from fhir_server.progress import Progress
from fhir_server.storage.repository import Repository, Session

PURGED_PATIENT = "https://dmp-fhir.org/NamingSystem/purged-patient"
_CALLER = Caller(None, "fhir-server purge-closed", "admin", None)


@dataclass
class PurgeReport:
    """What a purge did (or, dry, would do)."""

    dry_run: bool
    cutoff: datetime
    dmps: int = 0
    resources: int = 0
    versions: int = 0
    lines: list[str] = field(default_factory=list)

    def describe(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        return (
            f"{verb} {self.dmps:,} DMPs closed before {self.cutoff.date().isoformat()}: "
            f"{self.resources:,} resources, {self.versions:,} versions"
        )


def retention_cutoff(as_of: date, years: int) -> datetime:
    """The instant before which a closing is older than ``years`` years on ``as_of``."""
    try:
        day = as_of.replace(year=as_of.year - years)
    except ValueError:  # 29 February
        day = as_of.replace(year=as_of.year - years, day=28)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _trace(pid: str, closed: datetime, fp: store.DmpFootprint, years: int) -> dict[str, object]:
    event = audit_event(
        _CALLER,
        AccessMode(),
        "delete",
        "0",
        [],
        description=(
            f"purge of the DMP of Patient/{pid}, closed on {instant(closed)} (retention {years} years): "
            f"{fp.resources} resources and {fp.versions} versions removed"
        ),
    )
    event["entity"] = [
        {
            "what": {"identifier": {"system": PURGED_PATIENT, "value": pid}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
            "lifecycle": {
                "system": "http://terminology.hl7.org/CodeSystem/dicom-audit-lifecycle",
                "code": "14",
            },
        }
    ]
    return event


async def purge_closed(
    repo: Repository, years: int, as_of: date, dry_run: bool, progress: TextIO | None = None
) -> PurgeReport:
    """Purge (or count, with ``dry_run``) every DMP closed before ``as_of`` minus ``years`` years."""
    await store.ensure_dmp_indexes(repo)
    report = PurgeReport(dry_run, retention_cutoff(as_of, years))
    due = await store.closed_before(repo, report.cutoff)
    trail = AuditTrail(repo)
    with Progress(len(due), "purge" if not dry_run else "purge (dry run)", "DMPs", progress) as bar:
        for doc in due:
            pid, closed = doc["_id"], doc["closed"]
            if dry_run:
                fp = await store.footprint(repo, pid)
            else:

                async def run(s: Session, pid: str = pid, closed: datetime = closed) -> store.DmpFootprint:
                    removed = await store.purge_dmp(repo, pid, s)
                    await trail.write_in(_trace(pid, closed, removed, years), s)
                    return removed

                fp = await repo.in_transaction(run)
            report.dmps += 1
            report.resources += fp.resources
            report.versions += fp.versions
            kinds = ", ".join(f"{n} {t}" for t, n in sorted(fp.current.items()))
            report.lines.append(
                f"{'would purge' if dry_run else 'purged'} Patient/{pid} (closed {closed.date().isoformat()}): "
                f"{kinds or 'no resources'}; {fp.versions} versions"
            )
            bar.advance()
    return report
