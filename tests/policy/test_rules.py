"""The DMP rules, each with tokens of the right kind (docs/access-rules.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fhir_server.auth.labels import VISIBILITY_SYSTEM
from tests.conftest import bearer
from tests.policy.dmp import (
    consent,
    create,
    document,
    ids,
    new_patient,
    new_practitioner,
    patient_user,
    professional,
)

MASQUE = "MASQUE_PS"


@pytest.fixture(scope="module")
async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    w: dict[str, Any] = {}
    w["gp"] = await new_practitioner(client, "10")  # attending doctor of P
    w["doc"] = await new_practitioner(client, "10")  # another doctor, authorized
    w["author"] = await new_practitioner(client, "10")  # wrote the masked document
    w["stranger"] = await new_practitioner(client, "10")  # never authorized
    w["blocked"] = await new_practitioner(client, "10")  # authorized, then blocked
    w["pharma"] = await new_practitioner(client, "21")
    w["work"] = await new_practitioner(client, "10", "SM25")
    w["P"] = pid = await new_patient(client, "Règles", attending=w["gp"])
    w["Q"] = await new_patient(client, "Autre")
    for who in ("gp", "doc", "author", "blocked", "pharma"):
        await create(client, consent(pid, w[who]))
    await create(client, consent(pid, w["blocked"], "deny"))
    w["report"] = await create(client, document(pid, "11488-4", author=f"Practitioner/{w['author']}"))
    w["masked"] = await create(
        client, document(pid, "34874-8", author=f"Practitioner/{w['author']}", labels=(MASQUE,))
    )
    w["held"] = await create(client, document(pid, "11502-2", labels=("INVISIBLE_PATIENT",)))
    w["minor"] = await create(client, document(pid, "11488-4", labels=("INVISIBLE_REPRESENTANTS_LEGAUX",)))
    return w


async def _docs(client: httpx.AsyncClient, headers: dict[str, str], pid: str) -> set[str]:
    r = await client.get("DocumentReference", params={"patient": pid}, headers=headers)
    assert r.status_code == 200, r.text
    return ids(r.json())


async def test_without_the_patients_authorization_a_professional_gets_403(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    h = await professional(app, world["stranger"], "10")
    assert (await client.get(f"Patient/{world['P']}", headers=h)).status_code == 403
    assert (await client.get(f"DocumentReference/{world['report']}", headers=h)).status_code == 403
    assert (await client.get(f"Patient/{world['P']}/DocumentReference", headers=h)).status_code == 403
    assert await _docs(client, h, world["P"]) == set()
    # Declaring the patient's authorization is the professional's own (traced) write; then they see it.
    assert (
        await client.post("Consent", json=consent(world["Q"], world["stranger"]), headers=h)
    ).status_code == 201
    assert (await client.get(f"Patient/{world['Q']}", headers=h)).status_code == 200
    # ...but they cannot write a consent in someone else's name, nor a block.
    other = consent(world["Q"], world["doc"])
    assert (await client.post("Consent", json=other, headers=h)).status_code == 403


async def test_a_blocked_professional_sees_nothing_despite_an_earlier_authorization(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    h = await professional(app, world["blocked"], "10")
    assert (await client.get(f"Patient/{world['P']}", headers=h)).status_code == 403
    assert await _docs(client, h, world["P"]) == set()
    # Even in an emergency: a block is the patient's word about that professional.
    btg = await professional(app, world["blocked"], "10", mode="bris-de-glace", reason="arret cardiaque")
    assert await _docs(client, btg, world["P"]) == set()


async def test_masked_documents_are_seen_by_their_author_and_the_attending_doctor_only(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    everything = {world["report"], world["masked"], world["held"], world["minor"]}
    for who, sees in (
        ("doc", everything - {world["masked"]}),
        ("author", everything),
        ("gp", everything),
    ):
        h = await professional(app, world[who], "10")
        assert await _docs(client, h, world["P"]) == sees, who
    h = await professional(app, world["doc"], "10")
    assert (await client.get(f"DocumentReference/{world['masked']}", headers=h)).status_code == 403
    total = await client.get(
        "DocumentReference", params={"patient": world["P"], "_summary": "count"}, headers=h
    )
    assert total.json()["total"] == 3


async def test_patient_and_representatives_see_all_but_what_is_held_from_them(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    everything = {world["report"], world["masked"], world["held"], world["minor"]}
    me = await patient_user(app, world["P"])
    assert await _docs(client, me, world["P"]) == everything - {world["held"]}
    rep = await patient_user(app, world["P"], role="representative")
    assert await _docs(client, rep, world["P"]) == everything - {world["held"], world["minor"]}
    assert (await client.get(f"DocumentReference/{world['held']}", headers=me)).status_code == 403


async def test_the_patient_masks_and_unmasks_but_changes_nothing_else(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    me = await patient_user(app, world["P"])
    rid = await create(client, document(world["P"], "11488-4", author=f"Practitioner/{world['author']}"))
    doc = (await client.get(f"DocumentReference/{rid}", headers=me)).json()
    doc.setdefault("meta", {})["security"] = [{"system": VISIBILITY_SYSTEM, "code": MASQUE}]
    r = await client.put(f"DocumentReference/{rid}", json=doc, headers=me)
    assert r.status_code == 200, r.text
    h = await professional(app, world["doc"], "10")
    assert (await client.get(f"DocumentReference/{rid}", headers=h)).status_code == 403
    doc = r.json()
    doc["meta"].pop("security")
    assert (await client.put(f"DocumentReference/{rid}", json=doc, headers=me)).status_code == 200
    assert (await client.get(f"DocumentReference/{rid}", headers=h)).status_code == 200
    doc = (await client.get(f"DocumentReference/{rid}", headers=me)).json()
    doc["description"] = "réécrit par le patient"
    assert (await client.put(f"DocumentReference/{rid}", json=doc, headers=me)).status_code == 403


async def test_invisible_to_the_patient_and_masked_at_once_is_422(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    r = await client.post(
        "DocumentReference", json=document(world["P"], "11488-4", labels=(MASQUE, "INVISIBLE_PATIENT"))
    )
    assert r.status_code == 422
    assert r.json()["issue"][0]["expression"] == ["DocumentReference.meta.security"]


async def test_emergency_access_needs_a_reason_stays_within_the_matrix_and_is_flagged(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    nurse = await new_practitioner(client, "60")
    no_reason = await professional(app, nurse, "60", mode="bris-de-glace")
    r = await client.get(f"Patient/{world['P']}", headers=no_reason)
    assert r.status_code == 400 and "X-DMP-Access-Reason" in r.text
    # A reason with accents is sent percent-encoded (header values are ASCII).
    btg = await professional(app, nurse, "60", mode="bris-de-glace", reason="malaise%20%C3%A0%20l%27accueil")
    seen = await _docs(client, btg, world["P"])
    # The nurse's matrix: the biology report and the others that are not consultation reports; never
    # the operative report.
    assert world["held"] in seen and world["masked"] not in seen and world["report"] not in seen
    me = await patient_user(app, world["P"])
    traces = await client.get(
        "AuditEvent",
        params={"patient": world["P"], "_tag": "https://dmp-fhir.org/CodeSystem/audit-flag|bris-de-glace"},
        headers=me,
    )
    events = [e["resource"] for e in traces.json().get("entry", [])]
    assert any(
        ev["agent"][0]["who"]["reference"] == f"Practitioner/{nurse}"
        and ev["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
        and "malaise à l'accueil" in ev["outcomeDesc"]
        for ev in events
    )


async def test_the_patient_can_refuse_emergency_and_regulation_access(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    er = await new_practitioner(client, "10")
    pid = await new_patient(client, "Refus")
    btg = await professional(app, er, "10", mode="bris-de-glace", reason="coma")
    samu = await professional(app, er, "10", mode="centre-regulation", reason="appel au 15")
    assert (await client.get(f"Patient/{pid}", headers=btg)).status_code == 200
    assert (await client.get(f"Patient/{pid}", headers=samu)).status_code == 200
    await create(client, consent(pid, None, "deny", purpose="BTG"))
    assert (await client.get(f"Patient/{pid}", headers=btg)).status_code == 403
    assert (await client.get(f"Patient/{pid}", headers=samu)).status_code == 200
    await create(client, consent(pid, None, "deny", purpose="ETREAT"))
    assert (await client.get(f"Patient/{pid}", headers=samu)).status_code == 403


async def test_occupational_doctor_needs_express_consent_and_has_no_emergency_mode(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    h = await professional(app, world["work"], "10", "SM25")
    assert (await client.get(f"Patient/{world['P']}", headers=h)).status_code == 403
    btg = await professional(app, world["work"], "10", "SM25", mode="bris-de-glace", reason="x")
    assert (await client.get(f"Patient/{world['P']}", headers=btg)).status_code == 403
    await create(client, consent(world["P"], world["work"]))
    assert (await client.get(f"Patient/{world['P']}", headers=h)).status_code == 200


async def test_insurers_doctors_and_employers_are_always_refused(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    insurer_doc = await new_practitioner(client, "10", "MEDECIN_ASSUREUR")
    await create(client, consent(world["P"], insurer_doc))
    for headers in (
        await professional(app, insurer_doc, "10", "MEDECIN_ASSUREUR"),
        await bearer(app, "system/*.rs", role="employer"),
        await bearer(app, "system/*.rs", role="insurer"),
    ):
        assert (await client.get(f"Patient/{world['P']}", headers=headers)).status_code == 403
        assert (await client.get("DocumentReference", headers=headers)).status_code == 403


async def test_the_assurance_maladie_writes_reimbursements_but_reads_no_clinical_content(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    cnam = await bearer(app, "system/*.cruds", role="cnam")
    for rtype in ("DocumentReference", "Binary", "AllergyIntolerance", "MedicationStatement"):
        assert (await client.get(rtype, headers=cnam)).status_code == 403, rtype
    assert (await client.get(f"DocumentReference/{world['report']}", headers=cnam)).status_code == 403
    coverage = {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{world['P']}"},
        "payor": [{"display": "CPAM"}],
    }
    assert (await client.post("Coverage", json=coverage, headers=cnam)).status_code == 201
    assert (
        await client.post("DocumentReference", json=document(world["P"], "11488-4"), headers=cnam)
    ).status_code == 403


async def test_research_sees_only_patients_who_did_not_object(
    app: FastAPI, client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    objector = await new_patient(client, "Opposant")
    await create(client, consent(objector, None, "deny", purpose="HRESCH"))
    research = await bearer(app, "system/*.rs", role="research")
    seen = ids(
        (await client.get("Patient", params={"_id": f"{objector},{world['P']}"}, headers=research)).json()
    )
    assert seen == {world["P"]}
