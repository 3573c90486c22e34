"""``Patient/[id]/$prior-exams``: similar acts and their reports, newest first, from the exam families of
``terminology/``, within the caller's policy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.dmp.systems import CCAM, NABM
from tests.operations.care import (
    CHEST_XRAY,
    GLUCOSE,
    HBA1C,
    KNEE_XRAY,
    MAMMOGRAPHY,
    claim,
    days_ago,
    eob,
    report,
)
from tests.policy.dmp import consent, create, new_patient, new_practitioner, patient_user, professional


@pytest.fixture(scope="module")
async def history(app: FastAPI, client: httpx.AsyncClient) -> dict[str, Any]:
    gp = await new_practitioner(client, "10")
    radiologist = await new_practitioner(client, "10")
    physio = await new_practitioner(client, "70")
    pid = await new_patient(client, "Examens", attending=gp)
    for who in (gp, physio):
        await create(client, consent(pid, who))
    lab = await create(client, {"resourceType": "Organization", "name": "Laboratoire du Centre"})
    rad = f"Practitioner/{radiologist}"
    ids = {
        "old_xray": await create(client, eob(pid, rad, days_ago(300), [CHEST_XRAY])),
        "new_xray": await create(client, eob(pid, rad, days_ago(30), [CHEST_XRAY])),
        "too_old": await create(client, eob(pid, rad, days_ago(1000), [CHEST_XRAY])),
        "mammo": await create(client, eob(pid, rad, days_ago(30), [MAMMOGRAPHY])),
        "knee": await create(client, eob(pid, rad, days_ago(60), [KNEE_XRAY])),
        "lab": await create(client, eob(pid, f"Organization/{lab}", days_ago(10), [GLUCOSE])),
        # A claim not yet settled by an EOB counts too.
        "pending": await create(client, claim(pid, rad, days_ago(2), [CHEST_XRAY])),
        # Same-day imaging report of the recent X-ray; one naming the mammography; one masked.
        "xray_report": await create(client, report(pid, "18748-4", days_ago(30), rad)),
        "mammo_report": await create(client, report(pid, "18748-4", days_ago(30), rad, MAMMOGRAPHY)),
        "named_report": await create(client, report(pid, "18748-4", days_ago(400), rad, CHEST_XRAY)),
        "lab_report": await create(client, report(pid, "11502-2", days_ago(10), f"Organization/{lab}")),
    }
    masked = report(pid, "18748-4", days_ago(300), rad)
    masked["meta"] = {
        "security": [
            {
                "system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
                "code": "MASQUE_PS",
            }
        ]
    }
    ids["masked_report"] = await create(client, masked)
    settled = eob(pid, rad, days_ago(5), [CHEST_XRAY])
    ids["settled_claim"] = await create(client, claim(pid, rad, days_ago(5), [CHEST_XRAY]))
    settled["claim"] = {"reference": f"Claim/{ids['settled_claim']}"}
    ids["settled"] = await create(client, settled)
    return {
        "pid": pid,
        "radiologist": radiologist,
        "ids": ids,
        "gp_h": await professional(app, gp, "10"),
        "physio_h": await professional(app, physio, "70"),
        "other_gp_h": await professional(app, radiologist, "10"),
        "patient_h": await patient_user(app, pid),
    }


def _matches(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]


async def _prior(client: httpx.AsyncClient, h: dict[str, Any], headers: str, **params: str) -> dict[str, Any]:
    r = await client.get(f"Patient/{h['pid']}/$prior-exams", params=params, headers=h[headers])
    assert r.status_code == 200, r.text
    bundle: dict[str, Any] = r.json()
    return bundle


async def test_similar_acts_and_their_reports_newest_first(
    client: httpx.AsyncClient, history: dict[str, Any]
) -> None:
    ids = history["ids"]
    bundle = await _prior(client, history, "gp_h", code=f"{CCAM}|ZBQK002")
    get_fhir_model_class("Bundle").model_validate(bundle)
    found = _matches(bundle)
    # The attending doctor sees the masked report; the same-day report of a mammography is not similar.
    assert found == [
        ids["pending"],
        ids["settled"],
        ids["new_xray"],
        ids["xray_report"],
        ids["old_xray"],
        ids["masked_report"],
        ids["named_report"],
    ]
    assert bundle["total"] == len(found)
    included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert history["radiologist"] in included
    outcome = bundle["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    assert "Radiographie du thorax" in outcome["resource"]["issue"][0]["diagnostics"]


async def test_months_narrows_and_the_family_groups_other_codes(
    client: httpx.AsyncClient, history: dict[str, Any]
) -> None:
    ids = history["ids"]
    recent = _matches(await _prior(client, history, "gp_h", code=f"{CCAM}|ZBQK002", months="3"))
    assert ids["old_xray"] not in recent and ids["new_xray"] in recent
    # HbA1c and glucose are one family (glycaemia): asking for HbA1c finds the glucose test and its report.
    lab = _matches(await _prior(client, history, "gp_h", code=f"{NABM}|{HBA1C[1]}"))
    assert lab == [ids["lab"], ids["lab_report"]]
    # A code the map does not place matches only itself.
    alone = await _prior(client, history, "gp_h", code=f"{CCAM}|ZZZZ999")
    assert _matches(alone) == []
    assert "aucune famille" in alone["entry"][-1]["resource"]["issue"][0]["diagnostics"]


async def test_prior_exams_within_the_policy(client: httpx.AsyncClient, history: dict[str, Any]) -> None:
    ids = history["ids"]
    code = f"{CCAM}|ZBQK002"
    # Another doctor (authorized only by authorship, here not at all): 403 on the whole record.
    r = await client.get(
        f"Patient/{history['pid']}/$prior-exams", params={"code": code}, headers=history["other_gp_h"]
    )
    assert r.status_code == 403
    # A physiotherapist reads imaging reports but no reimbursements and no masked document: only the
    # report that names its act is found (no visible act to date the others by).
    physio = await _prior(client, history, "physio_h", code=code)
    assert _matches(physio) == [ids["named_report"]]
    assert ids["masked_report"] not in _matches(physio)
    assert "masqu" not in str(physio).lower()
    mine = await _prior(client, history, "patient_h", code=code)
    assert ids["masked_report"] in _matches(mine)


async def test_bad_or_missing_code_is_400_naming_the_parameter(
    client: httpx.AsyncClient, history: dict[str, Any]
) -> None:
    for params, name in (
        ({}, "code"),
        ({"code": "ZBQK002"}, "code"),
        ({"code": f"{CCAM}|"}, "code"),
        ({"code": "http://loinc.org|18748-4"}, "code"),
        ({"code": f"{CCAM}|ZBQK002", "months": "0"}, "months"),
        ({"code": f"{CCAM}|ZBQK002", "months": "douze"}, "months"),
    ):
        r = await client.get(f"Patient/{history['pid']}/$prior-exams", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["issue"][0]["expression"] == [name]


async def test_the_operation_definition_is_served_and_advertised(client: httpx.AsyncClient) -> None:
    definition = (await client.get("OperationDefinition/prior-exams")).json()
    get_fhir_model_class("OperationDefinition").model_validate(definition)
    assert definition["code"] == "prior-exams"
    assert {p["name"] for p in definition["parameter"]} == {"code", "months", "return"}
    statement = (await client.get("metadata")).json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "prior-exams", "definition": definition["url"]}.items() <= next(
        op for op in patient["operation"] if op["name"] == "prior-exams"
    ).items()


async def test_post_with_parameters_is_the_same_call(
    client: httpx.AsyncClient, history: dict[str, Any]
) -> None:
    url = f"Patient/{history['pid']}/$prior-exams"
    code = f"{CCAM}|ZBQK002"
    by_get = _matches(await _prior(client, history, "gp_h", code=code, months="12"))
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "code", "valueString": code}, {"name": "months", "valueInteger": 12}],
    }
    r = await client.post(url, json=body, headers=history["gp_h"])
    assert r.status_code == 200, r.text
    assert _matches(r.json()) == by_get
    for bad in ({"resourceType": "Patient"}, {"resourceType": "Parameters", "parameter": [{"name": "code"}]}):
        r = await client.post(url, json=bad, headers=history["gp_h"])
        assert r.status_code == 400, r.text
