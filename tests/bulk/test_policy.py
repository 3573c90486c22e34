"""The DMP access policy applies to every query of an export job, rebuilt in the worker from the token."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from fhir_server.bulk.deidentify import Pseudonymizer
from tests.bulk.conftest import KICK_OFF, by_type, client_for, create, export, resources, worker
from tests.conftest import bearer, patient
from tests.policy.dmp import consent, patient_user


async def test_a_patient_token_exports_only_its_own_compartment(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    me = (await create(bulk, patient("Moi")))["id"]
    other = (await create(bulk, patient("Autre")))["id"]
    for pid in (me, other):
        await create(bulk, {"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{pid}"}})
    headers = await patient_user(bulk_app, me)
    r = await bulk.get(
        "Patient/$export", params={"_type": "Patient,AllergyIntolerance"}, headers={**KICK_OFF, **headers}
    )
    assert r.status_code == 202, r.text
    await worker(bulk_app).run_pending()
    status = await bulk.get(r.headers["Content-Location"], headers=headers)
    manifest = status.json()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bulk_app), headers=headers) as mine:
        found = by_type(await resources(mine, manifest))
    assert [p["id"] for p in found["Patient"]] == [me]
    assert {a["patient"]["reference"] for a in found["AllergyIntolerance"]} == {f"Patient/{me}"}


async def test_a_token_without_read_on_a_type_cannot_export_it(
    bulk_app: FastAPI, bulk: httpx.AsyncClient
) -> None:
    headers = await bearer(bulk_app, "system/Organization.rs", client_id="orgs-only", sub="orgs-only")
    r = await bulk.get("$export", params={"_type": "Patient"}, headers={**KICK_OFF, **headers})
    assert r.status_code == 403
    manifest = await export(bulk_app, client_for(bulk_app, headers))
    assert {o["type"] for o in manifest["output"]} <= {"Organization"}


async def test_research_receives_no_patient_who_objected(bulk_app: FastAPI, bulk: httpx.AsyncClient) -> None:
    objector = (await create(bulk, patient("Objecteur")))["id"]
    willing = (await create(bulk, patient("Volontaire")))["id"]
    await create(bulk, consent(objector, None, "deny", purpose="HRESCH"))
    for pid in (objector, willing):
        await create(bulk, {"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{pid}"}})
    research = await bearer(
        bulk_app, "system/*.rs", role="research", client_id="research-lab", sub="research-lab"
    )
    async with client_for(bulk_app, research) as lab:
        manifest = await export(bulk_app, lab, params={"_type": "Patient,AllergyIntolerance,Consent"})
        raw = b"".join([(await lab.get(o["url"])).content for o in manifest["output"]])
    # Pseudonyms hide the ids: the objector is recognised by the count of patients and what is absent.
    objector_ids = await _pseudonyms(bulk_app, [objector, willing])
    assert objector_ids[willing].encode() in raw
    assert objector_ids[objector].encode() not in raw
    assert objector.encode() not in raw and willing.encode() not in raw


async def _pseudonyms(app: FastAPI, ids: list[str]) -> dict[str, str]:
    s = app.state.services.settings
    secret = await app.state.export_jobs.pseudonym_secret(s.pseudonym_secret)
    p = Pseudonymizer(secret, s.fhir_base)
    return {i: p.resource_id("Patient", i) for i in ids}
