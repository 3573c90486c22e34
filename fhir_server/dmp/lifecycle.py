"""The DMP's write rules: identity (INS), one DMP per INS, creation channel, closing and reopening.

:func:`on_write` is called by ``ResourceService._store`` for every stored version (create, update,
patch, delete, in their conditional forms and in batch/transaction entries), inside the write's
transaction, after the version is put: a rule that fails raises a :class:`FhirError` and the whole
transaction, that version included, is rolled back. docs/dmp-lifecycle.md is the contract.

- Patient: every identifier of an INS system (INS-NIR, its test and demo systems, INS-NIA) must be a
  valid NIR consistent with ``gender`` and ``birthDate`` (422 naming ``Patient.identifier[i].value``);
  a Patient without an INS is accepted. Each INS is claimed for its Patient in ``dmp_ins`` (409 when
  another DMP holds it). The creation channel extension, when present, must hold a known code and
  does not change once recorded. Closing (``active: false`` and the closure extension) and reopening
  (the closure extension removed) are the patient's, their representative's or an operator's.
- Any resource: no write touches the compartment of a closed DMP (422).

**Hooks.** When a DMP is opened (its Patient created, or reopened) or an open DMP newly carries an
INS, :func:`on_dmp_opened` awaits each function of :data:`ON_DMP_OPENED` with a :class:`DmpOpened`
event, in the same transaction: a hook may write (through ``event.service``, full access, the
caller's traces) and a hook that raises aborts the opening. Register one with
``ON_DMP_OPENED.append(fn)`` at import time of the module that needs it. The first hook records the
patient's consent to an opening by someone else (a ``Consent``); the second feeds the DMP with its
staged reimbursement history (fhir_server.dmp.feed).
:func:`dmp_for_ins` says which DMP an INS identifies and whether it is closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fhir_server.auth.access import Access
from fhir_server.auth.policy import PATIENT_ROLES
from fhir_server.dmp import store, systems
from fhir_server.dmp.nir import InvalidNir, parse_nir
from fhir_server.fhir.dates import instant, now_ms
from fhir_server.fhir.errors import Conflict, Forbidden, Unprocessable

if TYPE_CHECKING:
    from fhir_server.fhir.rest import ResourceService
    from fhir_server.storage.repository import NewVersion, Record, Repository, Session

Json = dict[str, Any]

INS_SYSTEMS = (systems.INS_NIR, systems.INS_NIA, systems.INS_NIR_TEST, systems.INS_NIR_DEMO)
CREATED, REOPENED, IDENTIFIED = "created", "reopened", "identified"


@dataclass(frozen=True)
class DmpOpened:
    """A DMP was just opened: its Patient created (``reason`` ``created``) or reopened (``reopened``),
    or an open DMP's Patient now carries an INS it did not (``identified``).

    ``ins`` holds its INS as (system, value) pairs (possibly none); ``service`` writes with full access
    in ``session``, the transaction that opens the DMP."""

    patient_id: str
    resource: Json
    ins: tuple[tuple[str, str], ...]
    channel: str | None
    reason: str
    service: ResourceService
    session: Session


OpenedHook = Callable[[DmpOpened], Awaitable[None]]
ON_DMP_OPENED: list[OpenedHook] = []


async def on_dmp_opened(event: DmpOpened) -> None:
    """Run every hook of :data:`ON_DMP_OPENED` for ``event``, in order."""
    for hook in ON_DMP_OPENED:
        await hook(event)


@dataclass(frozen=True)
class DmpRef:
    """The DMP an INS identifies: its Patient id and whether it is closed now."""

    patient_id: str
    closed: bool


async def dmp_for_ins(repo: Repository, value: str, system: str = systems.INS_NIR) -> DmpRef | None:
    """The DMP of an INS (by its claim, one indexed read each), or None when no DMP has it: for code
    that receives data by INS (reimbursement extracts) and must not feed a closed DMP."""
    pid = await store.owner_of(repo, f"{system}|{value.upper()}")
    if pid is None:
        return None
    doc = await store.state(repo, pid)
    return DmpRef(pid, doc is not None and isinstance(doc.get("closed"), datetime))


# -- reading a Patient -----------------------------------------------------------------------------


def ins_of(patient: Json) -> tuple[tuple[str, str], ...]:
    """The (system, value) INS identifiers of a Patient."""
    return tuple(
        (i["system"], str(i.get("value", "")).upper())
        for i in patient.get("identifier") or []
        if isinstance(i, dict) and i.get("system") in INS_SYSTEMS
    )


def _claim_keys(patient: Json | None) -> set[str]:
    return {f"{s}|{v}" for s, v in ins_of(patient)} if patient else set()


def channel_of(patient: Json | None) -> str | None:
    """The creation channel code of a Patient, if recorded."""
    for ext in (patient or {}).get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == systems.CREATION_CHANNEL_EXTENSION:
            code = (ext.get("valueCoding") or {}).get("code")
            return code if isinstance(code, str) else None
    return None


def closure_of(patient: Json | None) -> Json | None:
    """The closure extension of a Patient, if the DMP is closed."""
    for ext in (patient or {}).get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == systems.CLOSURE_EXTENSION:
            return ext
    return None


def check_ins(patient: Json) -> None:
    """422 naming the first INS identifier that is not a valid NIR consistent with the Patient."""
    for i, ident in enumerate(patient.get("identifier") or []):
        if not isinstance(ident, dict) or ident.get("system") not in INS_SYSTEMS:
            continue
        where = f"Patient.identifier[{i}].value"
        value = ident.get("value")
        try:
            nir = parse_nir(value if isinstance(value, str) else "")
        except InvalidNir as exc:
            raise Unprocessable(
                f"the INS '{value}' is not valid: {exc}", code="value", expression=where
            ) from exc
        problems = nir.mismatches(patient.get("gender"), patient.get("birthDate"))
        if problems:
            raise Unprocessable(
                f"the INS '{value}' does not match the patient: {'; '.join(problems)}",
                code="business-rule",
                expression=where,
            )


def check_channel(patient: Json) -> None:
    """422 for a creation channel extension without a known code of the channel CodeSystem."""
    found = [
        (k, e)
        for k, e in enumerate(patient.get("extension") or [])
        if isinstance(e, dict) and e.get("url") == systems.CREATION_CHANNEL_EXTENSION
    ]
    if len(found) > 1:
        raise Unprocessable(
            "a DMP has one creation channel",
            code="business-rule",
            expression=f"Patient.extension[{found[1][0]}]",
        )
    for k, ext in found:
        coding = ext.get("valueCoding")
        where = f"Patient.extension[{k}].valueCoding"
        if not isinstance(coding, dict) or coding.get("system") != systems.CREATION_CHANNEL:
            raise Unprocessable(
                f"the creation channel is a valueCoding of {systems.CREATION_CHANNEL}",
                code="value",
                expression=where,
            )
        if coding.get("code") not in systems.CREATION_CHANNELS:
            raise Unprocessable(
                f"'{coding.get('code')}' is not a creation channel (one of {', '.join(systems.CREATION_CHANNELS)})",
                code="code-invalid",
                expression=f"{where}.code",
            )


def check_closure(patient: Json) -> str:
    """The reason of a closure extension that is well formed on an inactive Patient; 422 otherwise."""
    ext = closure_of(patient) or {}
    k = (patient.get("extension") or []).index(ext)
    parts = {p.get("url"): p for p in ext.get("extension") or [] if isinstance(p, dict)}
    reason = (parts.get("reason") or {}).get("valueString")
    if not isinstance(reason, str) or not reason.strip():
        raise Unprocessable(
            "closing a DMP needs its reason (extension 'reason', valueString)",
            code="required",
            expression=f"Patient.extension[{k}]",
        )
    when = (parts.get("date") or {}).get("valueDate")
    # A day of slack: the client's today may be the server's tomorrow (time zones).
    latest = (now_ms() + timedelta(days=1)).date().isoformat()
    if not isinstance(when, str) or when > latest:
        raise Unprocessable(
            "closing a DMP needs its date (extension 'date', valueDate), not in the future",
            code="required",
            expression=f"Patient.extension[{k}]",
        )
    if patient.get("active") is not False:
        raise Unprocessable(
            "a closed DMP's Patient is not active (active: false)", expression="Patient.active"
        )
    return reason.strip()


# -- the rules -------------------------------------------------------------------------------------


def _may_close(access: Access, pid: str) -> bool:
    policy = access.policy
    if policy is None:
        return True
    return policy.kind in PATIENT_ROLES and policy.patient == pid


def _since(doc: Json) -> str:
    return f" since {instant(doc['closed'])}" if isinstance(doc.get("closed"), datetime) else ""


async def on_write(
    service: ResourceService, current: Record | None, new: NewVersion, session: Session
) -> None:
    """Apply the DMP rules to ``new`` (replacing ``current``) inside the write's transaction."""
    old = current.resource if current is not None and not current.deleted else None
    if new.rtype == "Patient":
        await _patient(service, old, new, session)
        return
    was_in = patient_ids(current)
    touched = sorted(set(new.compartments) | set(was_in))
    closed = await store.closed_among(service.repo, touched, session)
    if closed is not None:
        raise Unprocessable(
            f"the DMP of Patient/{closed['_id']} is closed{_since(closed)}: it accepts no new data "
            "until it is reopened",
            code="business-rule",
            expression=new.rtype,
        )


async def on_create_many(service: ResourceService, versions: list[NewVersion], session: Session) -> None:
    """The rules of :func:`on_write` for a bulk creation: the Patients one by one, and one query for
    whether any of the other resources falls into a closed DMP."""
    others: set[str] = set()
    for new in versions:
        if new.rtype == "Patient":
            await _patient(service, None, new, session)
        else:
            others.update(new.compartments)
    closed = await store.closed_among(service.repo, sorted(others), session)
    if closed is not None:
        raise Unprocessable(
            f"the DMP of Patient/{closed['_id']} is closed{_since(closed)}: it accepts no new data",
            code="business-rule",
        )


def patient_ids(record: Record | None) -> list[str]:
    """The patients whose compartment held ``record``."""
    from fhir_server.search.index import patient_compartments

    if record is None or record.resource is None:
        return []
    return patient_compartments(record.rtype, record.id, record.resource)


async def _patient(service: ResourceService, old: Json | None, new: NewVersion, session: Session) -> None:
    repo, pid, res = service.repo, new.id, new.resource
    was = await store.state(repo, pid, session) if old is not None else None
    was_closed = was is not None and isinstance(was.get("closed"), datetime)
    if res is None:
        if was_closed:
            raise Unprocessable(
                f"the DMP of Patient/{pid} is closed{_since(was or {})}: it is archived, not deleted",
                code="business-rule",
            )
        await store.drop_state(repo, pid, session)
        await store.release_ins(repo, _claim_keys(old), pid, session)
        return
    check_ins(res)
    check_channel(res)
    before, after = channel_of(old), channel_of(res)
    if old is not None and before is not None and after != before:
        raise Unprocessable(
            f"the creation channel records how the DMP was opened ({before}) and does not change",
            code="business-rule",
            expression="Patient.extension",
        )
    closing = closure_of(res) is not None
    if was_closed and closing:
        raise Unprocessable(
            f"the DMP of Patient/{pid} is closed{_since(was or {})}: only reopening it (removing the "
            "closure extension, active: true) is accepted",
            code="business-rule",
            expression="Patient",
        )
    reason = check_closure(res) if closing else None
    if closing and old is None:
        raise Unprocessable(
            "a DMP is opened before it is closed: create the Patient without the closure extension",
            code="business-rule",
            expression="Patient.extension",
        )
    if (closing or was_closed) and not _may_close(service.access, pid):
        raise Forbidden(
            f"only the patient, a representative or an operator may {'close' if closing else 'reopen'} a DMP"
        )
    await _claims(service, pid, old, res, session)
    now = now_ms()
    if old is None:
        await store.save_state(
            repo, pid, {"opened": now, "channel": after, "closed": None, "reason": None}, session
        )
        await on_dmp_opened(_event(service, pid, res, after, CREATED, session))
    elif closing:
        await store.save_state(repo, pid, {"closed": now, "reason": reason}, session)
    elif was_closed:
        assert was is not None
        _check_retention(service, pid, was["closed"], now)
        await store.save_state(repo, pid, {"closed": None, "reason": None}, session)
        await on_dmp_opened(_event(service, pid, res, after, REOPENED, session))
    elif _claim_keys(res) - _claim_keys(old):
        await on_dmp_opened(_event(service, pid, res, after, IDENTIFIED, session))


def _check_retention(service: ResourceService, pid: str, closed: datetime, now: datetime) -> None:
    """422 when the DMP was closed longer ago than the retention period (it awaits its purge)."""
    years = service.retention_years
    try:
        end = closed.replace(year=closed.year + years)
    except ValueError:  # 29 February
        end = closed.replace(year=closed.year + years, day=28)
    if now >= end.astimezone(UTC):
        raise Unprocessable(
            f"the DMP of Patient/{pid} was closed more than {years} years ago and can no longer be reopened",
            code="business-rule",
            expression="Patient",
        )


async def _claims(service: ResourceService, pid: str, old: Json | None, res: Json, session: Session) -> None:
    before, after = _claim_keys(old), _claim_keys(res)
    await store.release_ins(service.repo, before - after, pid, session)
    try:
        await store.claim_ins(service.repo, sorted(after - before), pid, session)
    except store.ClaimTaken as exc:
        # After a lost race the winner is known once it committed, outside this transaction.
        owner = exc.owner or await store.owner_of(service.repo, exc.key)
        where = f"Patient/{owner}" if owner and owner != pid else "another DMP"
        i = next(
            k
            for k, ident in enumerate(res.get("identifier") or [])
            if isinstance(ident, dict)
            and f"{ident.get('system')}|{str(ident.get('value', '')).upper()}" == exc.key
        )
        raise Conflict(
            f"this INS already identifies the DMP {where}: one DMP per INS",
            code="duplicate",
            expression=f"Patient.identifier[{i}].value",
        ) from exc


def _event(
    service: ResourceService, pid: str, res: Json, channel: str | None, reason: str, session: Session
) -> DmpOpened:
    full = service.bound(Access(unrestricted=True, audit=service.access.audit))
    return DmpOpened(pid, res, ins_of(res), channel, reason, full, session)


async def record_opening_consent(event: DmpOpened) -> None:
    """When someone else than the patient opens the DMP (a channel other than ``patient-web``), record
    the patient's consent to the opening, which the opener attests by opening it (docs/dmp-lifecycle.md)."""
    if event.reason != CREATED or event.channel in (None, systems.PATIENT_WEB):
        return
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": systems.CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{event.patient_id}"},
        "dateTime": instant(now_ms()),
        "performer": [{"reference": f"Patient/{event.patient_id}"}],
        "policy": [{"uri": systems.OPENING_POLICY}],
        "policyRule": {"coding": [{"system": systems.ACT_CODE, "code": "OPTIN"}]},
        "provision": {
            "type": "permit",
            "code": [{"coding": [{"system": systems.CREATION_CHANNEL, "code": event.channel}]}],
        },
    }
    await event.service.create("Consent", consent, session=event.session)


async def feed_reimbursement_history(event: DmpOpened) -> None:
    """Feed the DMP with the staged reimbursements of its INS (fhir_server.dmp.feed)."""
    # Imported here: the feed writes through the REST layer's versions, and that layer imports this module.
    from fhir_server.dmp.feed import feed_opened

    await feed_opened(event)


ON_DMP_OPENED.append(record_opening_consent)
ON_DMP_OPENED.append(feed_reimbursement_history)
