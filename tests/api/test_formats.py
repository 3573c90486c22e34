"""Formats and HTTP plumbing: content negotiation, ``_pretty``, ``_summary``/``_elements``, request ids,
health, unknown routes and methods, and the CapabilityStatement."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.storage.client import Mongo
from tests.conftest import SERVED_BY_ISSUE, patient, snapshot
from tests.dmp.ins import fresh_nir

Json = dict[str, Any]
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
SERVED = SERVED_BY_ISSUE
# Top-level Patient elements marked isSummary in R4 (besides id/meta/implicitRules).
PATIENT_SUMMARY = {
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "deceasedBoolean",
    "deceasedDateTime",
    "address",
    "managingOrganization",
    "link",
}


def _full_patient() -> Json:
    return patient(
        text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Hélène Lefèvre</div>'},
        identifier=[{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": fresh_nir()}],
        active=True,
        _birthDate={"extension": [{"url": "http://example.org/precision", "valueString": "jour"}]},
        telecom=[{"system": "phone", "value": "0102030405"}],
        maritalStatus={"text": "mariée"},
        multipleBirthBoolean=False,
        communication=[{"language": {"text": "français"}}],
        contact=[{"name": {"family": "Lefèvre"}}],
        meta={"tag": [{"system": "http://example.org/tags", "code": "keep-me"}]},
    )


@pytest.fixture(scope="module")
async def stored(client: httpx.AsyncClient) -> Json:
    r = await client.post("Patient", json=_full_patient())
    assert r.status_code == 201, r.text
    created: Json = r.json()
    return created


def _is_subsetted(resource: Json) -> bool:
    return any(
        t.get("system") == SUBSETTED["system"] and t.get("code") == SUBSETTED["code"]
        for t in resource.get("meta", {}).get("tag", [])
    )


def _assert_outcome(r: httpx.Response, status: int) -> Json:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body: Json = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] in {"error", "fatal"}
    assert body["issue"][0]["diagnostics"]
    return body


# -- content negotiation ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "application/fhir+json", "application/json"])
async def test_format_parameter_naming_json_is_accepted(
    client: httpx.AsyncClient, stored: Json, fmt: str
) -> None:
    r = await client.get(f"Patient/{stored['id']}", params={"_format": fmt})
    assert r.status_code == 200, r.text
    assert r.json() == stored
    assert r.headers["content-type"].startswith("application/fhir+json")


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json",
        "application/json",
        "application/fhir+json; fhirVersion=4.0",
        "*/*",
        "application/fhir+xml;q=0.9, application/fhir+json",
    ],
)
async def test_accept_allowing_json_answers_fhir_json(
    client: httpx.AsyncClient, stored: Json, accept: str
) -> None:
    r = await client.get(f"Patient/{stored['id']}", headers={"Accept": accept})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert r.json() == stored


async def test_no_accept_header_answers_fhir_json(client: httpx.AsyncClient, stored: Json) -> None:
    request = client.build_request("GET", f"Patient/{stored['id']}")
    del request.headers["accept"]
    r = await client.send(request)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert r.json() == stored


@pytest.mark.parametrize("fmt", ["xml", "application/fhir+xml", "text/xml", "ttl"])
async def test_format_parameter_naming_xml_is_406(client: httpx.AsyncClient, stored: Json, fmt: str) -> None:
    _assert_outcome(await client.get(f"Patient/{stored['id']}", params={"_format": fmt}), 406)


@pytest.mark.parametrize("accept", ["application/fhir+xml", "application/xml", "text/html"])
async def test_accept_without_json_is_406(client: httpx.AsyncClient, stored: Json, accept: str) -> None:
    _assert_outcome(await client.get(f"Patient/{stored['id']}", headers={"Accept": accept}), 406)


async def test_format_parameter_wins_over_accept(client: httpx.AsyncClient, stored: Json) -> None:
    r = await client.get(
        f"Patient/{stored['id']}", params={"_format": "json"}, headers={"Accept": "application/fhir+xml"}
    )
    assert r.status_code == 200 and r.json() == stored


async def test_create_that_cannot_be_answered_in_json_is_406_and_writes_nothing(
    client: httpx.AsyncClient, mongo: Mongo
) -> None:
    before = await snapshot(mongo)
    r = await client.post("Patient", json=patient(), headers={"Accept": "application/fhir+xml"})
    _assert_outcome(r, 406)
    assert await snapshot(mongo) == before


@pytest.mark.parametrize("path", ["metadata", "Patient", "_history"])
async def test_every_response_is_fhir_json(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    assert isinstance(r.json(), dict)


# -- _pretty ---------------------------------------------------------------------------------------------


async def test_pretty_true_indents_the_json(client: httpx.AsyncClient, stored: Json) -> None:
    r = await client.get(f"Patient/{stored['id']}", params={"_pretty": "true"})
    assert r.status_code == 200
    assert r.content.startswith(b"{\n  ")
    assert b'\n  "resourceType": "Patient"' in r.content
    assert r.json() == stored


@pytest.mark.parametrize("pretty", [None, "false"])
async def test_default_json_is_compact(client: httpx.AsyncClient, stored: Json, pretty: str | None) -> None:
    params = {"_pretty": pretty} if pretty else {}
    r = await client.get(f"Patient/{stored['id']}", params=params)
    assert r.status_code == 200
    assert b"\n" not in r.content
    assert r.content == orjson.dumps(r.json())


async def test_pretty_applies_to_errors_too(client: httpx.AsyncClient) -> None:
    r = await client.get("Patient/does-not-exist", params={"_pretty": "true"})
    assert r.status_code == 404
    assert r.content.startswith(b"{\n  ")


# -- _summary and _elements --------------------------------------------------------------------------------


async def test_summary_true_keeps_only_summary_elements_and_tags_subsetted(
    client: httpx.AsyncClient, stored: Json
) -> None:
    r = await client.get(f"Patient/{stored['id']}", params={"_summary": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == stored["id"] and body["resourceType"] == "Patient"
    assert set(body) - {"resourceType", "id", "meta", "_birthDate"} <= PATIENT_SUMMARY
    assert {"name", "gender", "birthDate", "identifier", "active", "telecom"} <= set(body)
    for dropped in ["text", "maritalStatus", "multipleBirthBoolean", "communication", "contact"]:
        assert dropped not in body, dropped
    assert _is_subsetted(body)
    # The primitive extension goes with its element, and the stored tags are still there.
    assert body["_birthDate"] == stored["_birthDate"]
    assert {"system": "http://example.org/tags", "code": "keep-me"} in body["meta"]["tag"]


async def test_summary_does_not_change_the_stored_resource(client: httpx.AsyncClient, stored: Json) -> None:
    await client.get(f"Patient/{stored['id']}", params={"_summary": "true"})
    full = (await client.get(f"Patient/{stored['id']}")).json()
    assert full == stored
    assert not _is_subsetted(full)


async def test_summary_text_keeps_text_id_meta_only(client: httpx.AsyncClient, stored: Json) -> None:
    body = (await client.get(f"Patient/{stored['id']}", params={"_summary": "text"})).json()
    assert set(body) == {"resourceType", "id", "meta", "text"}
    assert body["text"] == stored["text"]
    assert _is_subsetted(body)


async def test_summary_data_drops_only_the_text(client: httpx.AsyncClient, stored: Json) -> None:
    body = (await client.get(f"Patient/{stored['id']}", params={"_summary": "data"})).json()
    assert "text" not in body
    assert {k: v for k, v in body.items() if k != "meta"} == {
        k: v for k, v in stored.items() if k not in {"meta", "text"}
    }
    assert _is_subsetted(body)


async def test_summary_false_returns_the_whole_resource(client: httpx.AsyncClient, stored: Json) -> None:
    body = (await client.get(f"Patient/{stored['id']}", params={"_summary": "false"})).json()
    assert body == stored


async def test_elements_keeps_the_named_elements_and_tags_subsetted(
    client: httpx.AsyncClient, stored: Json
) -> None:
    r = await client.get(f"Patient/{stored['id']}", params={"_elements": "name,gender"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"resourceType", "id", "meta", "name", "gender"}
    assert body["name"] == stored["name"] and body["gender"] == stored["gender"]
    assert _is_subsetted(body)


async def test_elements_on_vread_is_applied_too(client: httpx.AsyncClient, stored: Json) -> None:
    r = await client.get(f"Patient/{stored['id']}/_history/1", params={"_elements": "gender"})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"resourceType", "id", "meta", "gender"}


@pytest.mark.parametrize("mode", ["bogus", "yes"])
async def test_invalid_summary_is_400(client: httpx.AsyncClient, stored: Json, mode: str) -> None:
    body = _assert_outcome(await client.get(f"Patient/{stored['id']}", params={"_summary": mode}), 400)
    assert body["issue"][0].get("expression") == ["_summary"]


# -- request ids ------------------------------------------------------------------------------------------

_PLAIN_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


async def test_every_response_has_a_request_id(client: httpx.AsyncClient, stored: Json) -> None:
    ids = set()
    for path in [f"Patient/{stored['id']}", "Patient/does-not-exist", "metadata"]:
        r = await client.get(path)
        assert _PLAIN_ID.match(r.headers["x-request-id"]), r.headers
        ids.add(r.headers["x-request-id"])
    assert len(ids) == 3, "each request gets its own id"


async def test_plain_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("metadata", headers={"X-Request-Id": "trace-2024.abc_123"})
    assert r.headers["x-request-id"] == "trace-2024.abc_123"


@pytest.mark.parametrize(
    "hostile",
    ["has spaces in it", "tab\there", "a" * 200, "<script>alert(1)</script>", "id\x7fdel", "ünïcødé"],
    ids=["spaces", "tab", "200-chars", "markup", "control-char", "non-ascii"],
)
async def test_hostile_client_request_id_is_replaced(client: httpx.AsyncClient, hostile: str) -> None:
    r = await client.get("metadata", headers={"X-Request-Id": hostile.encode("utf-8")})
    returned = r.headers["x-request-id"]
    assert returned != hostile
    assert _PLAIN_ID.match(returned)


# -- routes outside the resources ----------------------------------------------------------------------------


async def test_health_is_200_json(client: httpx.AsyncClient) -> None:
    r = await client.get("http://test/health")
    assert r.status_code == 200
    assert "json" in r.headers["content-type"]
    assert r.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["Patient/1/foo/bar", "Patient/1/_history/1/extra", "http://test/nowhere"])
async def test_unknown_route_is_404_outcome(client: httpx.AsyncClient, path: str) -> None:
    _assert_outcome(await client.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"), [("PATCH", "Patient"), ("POST", "Patient/some-id"), ("PUT", "metadata")]
)
async def test_wrong_method_is_405_outcome(client: httpx.AsyncClient, method: str, path: str) -> None:
    _assert_outcome(await client.request(method, path, json=patient()), 405)


async def test_wrong_method_writes_nothing(client: httpx.AsyncClient, mongo: Mongo) -> None:
    before = await snapshot(mongo)
    _assert_outcome(await client.post("Patient/some-id", json=patient()), 405)
    assert await snapshot(mongo) == before


async def test_405_says_which_methods_are_allowed(client: httpx.AsyncClient) -> None:
    # RFC 9110 §15.5.6: a 405 response MUST carry an Allow header listing the supported methods.
    r = await client.request("PATCH", "Patient", json=patient())
    assert r.status_code == 405
    allowed = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
    assert {"GET", "POST"} <= allowed
    assert "PATCH" not in allowed


# -- CapabilityStatement -----------------------------------------------------------------------------------------


async def test_metadata_is_an_r4_capability_statement_of_the_served_types(client: httpx.AsyncClient) -> None:
    r = await client.get("metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] == "instance"
    assert {"json", "application/fhir+json"} & set(cs["format"])
    resources = cs["rest"][0]["resource"]
    stored = [res["type"] for res in resources if {"code": "create"} in res["interaction"]]
    assert set(stored) == SERVED
    assert len(stored) == len(SERVED)
    # The conformance resources served read-only from files (profiles/, terminology/).
    read_only = {res["type"] for res in resources} - SERVED
    assert read_only == {"CodeSystem", "ConceptMap", "StructureDefinition", "ValueSet"}


async def test_metadata_honours_format_negotiation(client: httpx.AsyncClient) -> None:
    _assert_outcome(await client.get("metadata", params={"_format": "xml"}), 406)
    r = await client.get("metadata", params={"_format": "json", "_pretty": "true"})
    assert r.status_code == 200 and r.content.startswith(b"{\n  ")
