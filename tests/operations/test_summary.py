"""``Patient/[id]/$summary``: an IPS-shaped document Bundle of what the caller may see, with French
narratives built from escaped data, and the same summary as a printable HTML page."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from fastapi import FastAPI
from fhir.resources.R4B import get_fhir_model_class

from tests.dmp.ins import fresh_nir
from tests.operations.care import CHEST_XRAY, GLUCOSE, GP_VISIT, HBA1C, METFORMIN, days_ago, eob
from tests.policy.dmp import consent, create, document, new_patient, patient_user, professional

LOINC = "http://loinc.org"
EVIL = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
async def dmp(app: FastAPI, client: httpx.AsyncClient) -> dict[str, Any]:
    gp = await create(
        client,
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "10001234567"}],
            "name": [{"family": "Martin", "given": ["Claire"], "prefix": ["Dr"]}],
            "qualification": [
                {
                    "code": {
                        "coding": [
                            {
                                "system": "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante",
                                "code": "10",
                            }
                        ]
                    }
                }
            ],
        },
    )
    nurse = await create(client, {"resourceType": "Practitioner", "name": [{"family": "Infirmière"}]})
    pid = await new_patient(client, "Résumé", attending=gp)
    for who in (gp, nurse):
        await create(client, consent(pid, who))
    lab = await create(client, {"resourceType": "Organization", "name": EVIL})
    allergy = await create(
        client,
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{pid}"},
            "code": {"text": f"Pénicilline {EVIL}"},
            "criticality": "high",
            "recordedDate": days_ago(100),
            "reaction": [{"manifestation": [{"text": "Urticaire"}]}],
        },
    )
    statement = await create(
        client,
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": {"reference": f"Patient/{pid}"},
            "medicationCodeableConcept": {
                "coding": [{"system": METFORMIN[0], "code": METFORMIN[1]}],
                "text": "Metformine 850 mg",
            },
            "dosage": [{"text": "1 comprimé matin et soir"}],
        },
    )
    pharmacy = await create(
        client,
        eob(
            pid,
            f"Organization/{lab}",
            days_ago(15),
            [
                METFORMIN,
                ("https://smt.esante.gouv.fr/terminologie-cip_ucd", "3400939999999", "Amoxicilline 1 g"),
            ],
            kind="pharmacy",
        ),
    )
    visit = await create(client, eob(pid, f"Practitioner/{gp}", days_ago(3), [GP_VISIT]))
    xray = await create(client, eob(pid, f"Practitioner/{gp}", days_ago(40), [CHEST_XRAY]))
    blood = await create(client, eob(pid, f"Organization/{lab}", days_ago(20), [GLUCOSE, HBA1C]))
    ancient = await create(client, eob(pid, f"Practitioner/{gp}", days_ago(800), [GP_VISIT]))
    vsm_old = document(pid, "60591-5", author=f"Practitioner/{gp}")
    vsm_old["date"] = f"{days_ago(400)}T09:00:00+01:00"
    vsm_new = document(pid, "60591-5", author=f"Practitioner/{gp}")
    vsm_new["date"] = f"{days_ago(10)}T09:00:00+01:00"
    vsm_new["content"][0]["attachment"]["data"] = "JVBERi0xLjQK"
    masked = document(pid, "11502-2", author=f"Practitioner/{gp}", labels=("MASQUE_PS",))
    masked["date"] = f"{days_ago(20)}T09:00:00+01:00"
    masked["description"] = "Sérologie confidentielle"
    return {
        "pid": pid,
        "gp": gp,
        "allergy": allergy,
        "statement": statement,
        "pharmacy": pharmacy,
        "visit": visit,
        "xray": xray,
        "blood": blood,
        "ancient": ancient,
        "vsm_old": await create(client, vsm_old),
        "vsm_new": await create(client, vsm_new),
        "masked": await create(client, masked),
        "gp_h": await professional(app, gp, "10"),
        "nurse_h": await professional(app, nurse, "60"),
        "patient_h": await patient_user(app, pid),
    }


async def _summary(client: httpx.AsyncClient, dmp: dict[str, Any], who: str) -> dict[str, Any]:
    r = await client.get(f"Patient/{dmp['pid']}/$summary", headers=dmp[who])
    assert r.status_code == 200, r.text
    bundle: dict[str, Any] = r.json()
    return bundle


def _section(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    composition = bundle["entry"][0]["resource"]
    return next(s for s in composition["section"] if s["code"]["coding"][0]["code"] == code)


def _entry_ids(section: dict[str, Any]) -> list[str]:
    return [e["reference"].rsplit("/", 1)[1] for e in section.get("entry", [])]


async def test_summary_is_a_document_with_the_ips_sections(
    client: httpx.AsyncClient, dmp: dict[str, Any]
) -> None:
    bundle = await _summary(client, dmp, "gp_h")
    assert bundle["type"] == "document" and bundle["timestamp"] and bundle["identifier"]["value"]
    get_fhir_model_class("Bundle").model_validate(bundle)  # a valid Bundle, every entry a valid resource
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    assert composition["subject"]["reference"].endswith(f"Patient/{dmp['pid']}")
    bundled = {e["fullUrl"] for e in bundle["entry"]}
    # Every reference of every section resolves inside the Bundle.
    for section in composition["section"]:
        for sub in [section, *section.get("section", [])]:
            assert {e["reference"] for e in sub.get("entry", [])} <= bundled
    assert _entry_ids(_section(bundle, "48765-2")) == [dmp["allergy"]]
    meds = _section(bundle, "10160-0")
    assert _entry_ids(meds) == [dmp["statement"], dmp["pharmacy"]]
    assert "Amoxicilline" in meds["text"]["div"] and "Metformine" in meds["text"]["div"]
    gp = _section(bundle, "medecin-traitant")
    assert _entry_ids(gp) == [dmp["gp"]] and "10001234567" in gp["text"]["div"]


async def test_acts_are_grouped_by_kind_latest_first(client: httpx.AsyncClient, dmp: dict[str, Any]) -> None:
    acts = _section(await _summary(client, dmp, "gp_h"), "47519-4")
    kinds = {s["code"]["coding"][0]["code"]: s for s in acts["section"]}
    assert list(kinds) == ["consultation", "imagerie", "biologie"]
    assert _entry_ids(kinds["consultation"]) == [dmp["visit"]]  # the 800-day-old visit is outside the window
    assert _entry_ids(kinds["imagerie"]) == [dmp["xray"]]
    biology = kinds["biologie"]["text"]["div"]
    assert "Glucose" in biology and "HbA1c" in biology
    assert "consultations et visites : 1" in acts["text"]["div"]
    assert "biologie médicale : 2" in acts["text"]["div"]


async def test_latest_document_of_each_type_as_a_link_without_its_body(
    client: httpx.AsyncClient, dmp: dict[str, Any]
) -> None:
    bundle = await _summary(client, dmp, "gp_h")
    documents = _section(bundle, "documents-recents")
    assert dmp["vsm_new"] in _entry_ids(documents) and dmp["vsm_old"] not in _entry_ids(documents)
    doc = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == dmp["vsm_new"])
    assert "data" not in doc["content"][0]["attachment"]
    assert 'href="http://example.org/doc.pdf"' in documents["text"]["div"]
    # The attending doctor sees the masked lab report.
    assert dmp["masked"] in _entry_ids(documents)


async def test_a_masked_document_leaves_no_trace(client: httpx.AsyncClient, dmp: dict[str, Any]) -> None:
    # A nurse may read lab reports (11502-2) and syntheses (class 11), but not masked documents.
    bundle = await _summary(client, dmp, "nurse_h")
    assert _entry_ids(_section(bundle, "documents-recents")) == [dmp["vsm_new"]]
    text = str(bundle)
    assert dmp["masked"] not in text
    assert "confidentielle" not in text
    assert "Compte rendu d'examens biologiques" not in _section(bundle, "documents-recents")["text"]["div"]
    # Nor reimbursements: the acts section is empty the same way as when there are none.
    acts = _section(bundle, "47519-4")
    assert acts["emptyReason"]["coding"][0]["code"] == "unavailable" and "section" not in acts
    mine = await _summary(client, dmp, "patient_h")
    assert dmp["masked"] in _entry_ids(_section(mine, "documents-recents"))


async def test_narratives_are_well_formed_xhtml_with_data_escaped(
    client: httpx.AsyncClient, dmp: dict[str, Any]
) -> None:
    bundle = await _summary(client, dmp, "gp_h")
    composition = bundle["entry"][0]["resource"]
    divs = [composition["text"]["div"]]
    for section in composition["section"]:
        divs += [s["text"]["div"] for s in [section, *section.get("section", [])]]
    for xhtml in divs:
        root = ElementTree.fromstring(xhtml)
        assert root.tag == "{http://www.w3.org/1999/xhtml}div"
        assert not root.findall(".//{http://www.w3.org/1999/xhtml}script")
    allergies = _section(bundle, "48765-2")["text"]["div"]
    assert "&lt;script&gt;" in allergies and "<script" not in allergies
    assert "élevée" in allergies


async def test_html_page_on_request(client: httpx.AsyncClient, dmp: dict[str, Any]) -> None:
    url = f"Patient/{dmp['pid']}/$summary"
    for kwargs in ({"params": {"_format": "html"}}, {"headers": {"Accept": "text/html,*/*;q=0.8"}}):
        headers = {**dmp["gp_h"], **kwargs.get("headers", {})}
        r = await client.get(url, params=kwargs.get("params"), headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src" not in r.headers["content-security-policy"]
        page = r.text
        assert page.startswith("<!DOCTYPE html>") and 'lang="fr"' in page
        assert "Allergies et intolérances" in page and "Traitements en cours" in page
        assert "<script" not in page and "&lt;script&gt;" in page
    # Other formats are still refused, and other operations stay JSON-only.
    assert (await client.get(url, params={"_format": "xml"}, headers=dmp["gp_h"])).status_code == 406
    r = await client.get(f"Patient/{dmp['pid']}/$everything", params={"_format": "html"})
    assert r.status_code == 406


async def test_summary_refuses_callers_outside_the_dmp(
    app: FastAPI, client: httpx.AsyncClient, dmp: dict[str, Any]
) -> None:
    other = await new_patient(client, "Autre")
    r = await client.get(f"Patient/{dmp['pid']}/$summary", headers=await patient_user(app, other))
    assert r.status_code == 403
    assert (await client.get("Patient/nobody/$summary")).status_code == 404
    r = await client.get(f"Patient/{dmp['pid']}/$summary", params={"identifier": "x"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["identifier"]


async def test_summary_by_identifier_within_reach(
    app: FastAPI, client: httpx.AsyncClient, dmp: dict[str, Any]
) -> None:
    nir = fresh_nir()  # consistent with the test patient's sex and birth date, unused elsewhere
    ins = f"urn:oid:1.2.250.1.213.1.4.10|{nir}"
    current = (await client.get(f"Patient/{dmp['pid']}")).json()
    current["identifier"] = [{"system": ins.split("|")[0], "value": ins.split("|")[1]}]
    assert (await client.put(f"Patient/{dmp['pid']}", json=current)).status_code == 200
    r = await client.get("Patient/$summary", params={"identifier": ins}, headers=dmp["gp_h"])
    assert r.status_code == 200, r.text
    composition = r.json()["entry"][0]["resource"]
    assert composition["subject"]["reference"].endswith(f"Patient/{dmp['pid']}")
    assert f"INS {nir}" in composition["text"]["div"]
    # Someone the patient did not authorize finds nobody by that identifier.
    stranger = await professional(app, await create(client, {"resourceType": "Practitioner"}), "10")
    r = await client.get("Patient/$summary", params={"identifier": ins}, headers=stranger)
    assert r.status_code == 404
    r = await client.get("Patient/$summary")
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["identifier"]
