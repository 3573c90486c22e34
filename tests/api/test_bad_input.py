"""Bad input: every malformed or invalid request answers an OperationOutcome with the right status and
the offending element, and writes nothing at all (create, update and transaction entries alike)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from fhir_server.storage.client import Mongo
from tests.conftest import patient, snapshot

Json = dict[str, Any]
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"


def _expressions(outcome: Json) -> list[str]:
    return [e for issue in outcome.get("issue", []) for e in issue.get("expression", [])]


def assert_outcome(r: httpx.Response, status: int, expression: str | None = None) -> Json:
    """The response is an OperationOutcome error with ``status`` naming ``expression`` (when given)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body: Json = r.json()
    assert body["resourceType"] == "OperationOutcome"
    first = body["issue"][0]
    assert first["severity"] in {"error", "fatal"}
    assert isinstance(first["code"], str) and first["code"]
    assert isinstance(first["diagnostics"], str) and first["diagnostics"]
    if expression is not None:
        assert expression in _expressions(body), body
    return body


@pytest.fixture
async def unchanged(mongo: Mongo) -> AsyncIterator[None]:
    """Fails the test unless the database holds exactly the same documents afterwards."""
    before = await snapshot(mongo)
    yield
    assert await snapshot(mongo) == before, "a rejected request changed the database"


@pytest.fixture
async def existing(client: httpx.AsyncClient, mongo: Mongo) -> AsyncIterator[Json]:
    """A stored Patient; the test must then leave the database (this Patient included) unchanged."""
    r = await client.post("Patient", json=patient("Existant"))
    assert r.status_code == 201, r.text
    before = await snapshot(mongo)
    yield r.json()
    assert await snapshot(mongo) == before, "a rejected request changed the database"


def _with(**changes: Any) -> Json:
    body = patient()
    body.update(changes)
    return body


def _without(key: str) -> Json:
    body = patient()
    del body[key]
    return body


# (case id, Patient body, status, expression or None)
BAD_PATIENTS: list[tuple[str, Json, int, str | None]] = [
    ("unknown-element", _with(foo="bar"), 400, "Patient.foo"),
    ("nested-unknown-element", _with(name=[{"family": "x", "foo": "bar"}]), 400, "Patient.name[0].foo"),
    ("object-where-array", _with(name={"family": "x"}), 400, "Patient.name"),
    ("array-where-single", _with(gender=["male"]), 400, "Patient.gender"),
    ("impossible-date", _with(birthDate="1990-13-45"), 400, "Patient.birthDate"),
    ("boolean-as-string", _with(active="true"), 400, "Patient.active"),
    ("number-as-string", _with(multipleBirthInteger="2"), 400, "Patient.multipleBirth"),
    ("null-value", _with(birthDate=None), 400, "Patient.birthDate"),
    ("empty-array", _with(name=[]), 400, "Patient.name"),
    ("empty-object", _with(name=[{}]), 400, "Patient.name[0]"),
    ("empty-string", _with(name=[{"family": ""}]), 400, "Patient.name[0].family"),
    ("blank-string", _with(gender="   "), 400, "Patient.gender"),
    ("unknown-choice-type", _with(deceasedString="yes"), 400, "Patient.deceasedString"),
    ("wrong-kind-in-choice", _with(deceasedBoolean="yes"), 400, "Patient.deceased"),
    (
        "contained-unknown-element",
        _with(contained=[{"resourceType": "Organization", "id": "o1", "foo": 1}]),
        400,
        "Patient.contained[0].foo",
    ),
    (
        "primitive-extension-unknown-key",
        _with(_birthDate={"extension": [{"url": "http://example.org/x", "valueString": "y"}], "foo": "x"}),
        400,
        "Patient._birthDate.foo",
    ),
    ("gender-outside-required-binding", _with(gender="xx"), 422, "Patient.gender"),
    (
        "name-use-outside-required-binding",
        _with(name=[{"family": "x", "use": "bogus"}]),
        422,
        "Patient.name[0].use",
    ),
]
BAD_IDS = [case[0] for case in BAD_PATIENTS]


# -- body syntax ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "content",
    [b'{"resourceType": "Patient",', b"{'resourceType': 'Patient'}", b"", b"\xff\xfe not utf-8"],
    ids=["truncated", "single-quotes", "empty-body", "not-utf8"],
)
async def test_malformed_json_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    assert_outcome(await client.post("Patient", content=content), 400)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "body", [[patient()], "Patient", 42, None], ids=["array", "string", "number", "null"]
)
async def test_body_that_is_not_a_json_object_is_400(client: httpx.AsyncClient, body: Any) -> None:
    assert_outcome(await client.post("Patient", json=body), 400)


@pytest.mark.usefixtures("unchanged")
async def test_missing_resource_type_is_400_naming_it(client: httpx.AsyncClient) -> None:
    assert_outcome(await client.post("Patient", json=_without("resourceType")), 400, "resourceType")


@pytest.mark.usefixtures("unchanged")
async def test_resource_type_differing_from_url_is_400(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Practitioner", "name": [{"family": "Martin"}]}
    assert_outcome(await client.post("Patient", json=body), 400, "resourceType")


@pytest.mark.usefixtures("unchanged")
async def test_unserved_type_posted_to_served_url_is_400(client: httpx.AsyncClient) -> None:
    body = {"resourceType": "Observation", "status": "final", "code": {"text": "poids"}}
    assert_outcome(await client.post("Patient", json=body), 400, "resourceType")


# -- content, through create --------------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("case", "body", "status", "expression"), BAD_PATIENTS, ids=BAD_IDS)
async def test_invalid_patient_create_is_refused_naming_the_element(
    client: httpx.AsyncClient, case: str, body: Json, status: int, expression: str | None
) -> None:
    assert_outcome(await client.post("Patient", json=body), status, expression)


@pytest.mark.usefixtures("unchanged")
async def test_allergy_clinical_status_outside_its_value_set_is_422(client: httpx.AsyncClient) -> None:
    body = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "cured"}]},
        "code": {"text": "arachide"},
        "patient": {"reference": "Patient/p1"},
    }
    assert_outcome(
        await client.post("AllergyIntolerance", json=body), 422, "AllergyIntolerance.clinicalStatus"
    )


async def test_allergy_clinical_status_inside_its_value_set_is_accepted(client: httpx.AsyncClient) -> None:
    body = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "resolved"}]},
        "code": {"text": "arachide"},
        "patient": {"reference": "Patient/p1"},
    }
    r = await client.post("AllergyIntolerance", json=body)
    assert r.status_code == 201, r.text


# -- update (PUT) ---------------------------------------------------------------------------------------


async def test_put_with_body_id_differing_from_url_is_400_naming_id(
    client: httpx.AsyncClient, existing: Json
) -> None:
    body = {**existing, "id": "someone-else"}
    assert_outcome(await client.put(f"Patient/{existing['id']}", json=body), 400, "id")


async def test_put_without_id_in_body_is_400(client: httpx.AsyncClient, existing: Json) -> None:
    body = {k: v for k, v in existing.items() if k != "id"}
    assert_outcome(await client.put(f"Patient/{existing['id']}", json=body), 400, "id")


@pytest.mark.usefixtures("unchanged")
async def test_put_without_id_to_new_url_creates_nothing(client: httpx.AsyncClient) -> None:
    assert_outcome(await client.put("Patient/never-created-without-id", json=patient()), 400, "id")


async def test_put_with_resource_type_differing_from_url_is_400(
    client: httpx.AsyncClient, existing: Json
) -> None:
    body = {"resourceType": "Practitioner", "id": existing["id"]}
    assert_outcome(await client.put(f"Patient/{existing['id']}", json=body), 400, "resourceType")


async def test_put_malformed_json_is_400(client: httpx.AsyncClient, existing: Json) -> None:
    assert_outcome(await client.put(f"Patient/{existing['id']}", content=b'{"id": '), 400)


@pytest.mark.parametrize(("case", "body", "status", "expression"), BAD_PATIENTS, ids=BAD_IDS)
async def test_invalid_patient_update_is_refused_and_current_version_kept(
    client: httpx.AsyncClient, existing: Json, case: str, body: Json, status: int, expression: str | None
) -> None:
    r = await client.put(f"Patient/{existing['id']}", json={**body, "id": existing["id"]})
    assert_outcome(r, status, expression)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("case", "body", "status", "expression"), BAD_PATIENTS, ids=BAD_IDS)
async def test_invalid_patient_update_as_create_creates_nothing(
    client: httpx.AsyncClient, case: str, body: Json, status: int, expression: str | None
) -> None:
    r = await client.put(f"Patient/bad-put-{case}", json={**body, "id": f"bad-put-{case}"})
    assert_outcome(r, status, expression)


# -- size and media type ----------------------------------------------------------------------------------


def _oversized() -> Json:
    return patient(name=[{"family": "x" * 1000, "given": ["y"]} for _ in range(250)])


@pytest.mark.usefixtures("unchanged")
async def test_body_over_the_size_limit_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("Patient", json=_oversized())
    assert int(r.request.headers["content-length"]) > 200_000
    assert_outcome(r, 413)


@pytest.mark.usefixtures("unchanged")
async def test_streamed_body_over_the_size_limit_without_content_length_is_413(
    client: httpx.AsyncClient,
) -> None:
    data = orjson.dumps(_oversized())

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 16_384):
            yield data[start : start + 16_384]

    r = await client.post("Patient", content=chunks())
    assert "content-length" not in r.request.headers
    assert_outcome(r, 413)


async def test_oversized_update_is_413(client: httpx.AsyncClient, existing: Json) -> None:
    body = {**_oversized(), "id": existing["id"]}
    assert_outcome(await client.put(f"Patient/{existing['id']}", json=body), 413)


async def test_body_just_under_the_size_limit_is_accepted(client: httpx.AsyncClient) -> None:
    body = patient(name=[{"family": "x" * 1000, "given": ["y"]} for _ in range(150)])
    r = await client.post("Patient", json=body)
    assert int(r.request.headers["content-length"]) < 200_000
    assert r.status_code == 201, r.text


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "media", ["application/xml", "application/fhir+xml", "text/plain", "application/x-www-form-urlencoded"]
)
async def test_unsupported_media_type_on_create_is_415(client: httpx.AsyncClient, media: str) -> None:
    r = await client.post("Patient", content=orjson.dumps(patient()), headers={"Content-Type": media})
    assert_outcome(r, 415)


async def test_unsupported_media_type_on_update_is_415(client: httpx.AsyncClient, existing: Json) -> None:
    r = await client.put(
        f"Patient/{existing['id']}",
        content=orjson.dumps({**existing, "gender": "male"}),
        headers={"Content-Type": "text/plain"},
    )
    assert_outcome(r, 415)


async def test_json_media_type_with_charset_is_accepted(client: httpx.AsyncClient) -> None:
    for media in ["application/fhir+json; charset=utf-8", "application/json"]:
        r = await client.post("Patient", content=orjson.dumps(patient()), headers={"Content-Type": media})
        assert r.status_code == 201, (media, r.text)


# -- transaction bundles ---------------------------------------------------------------------------


def _transaction(*entries: Json) -> Json:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _post_entry(resource: Json, full_url: str | None = None) -> Json:
    entry: Json = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


GOOD_FIRST = _post_entry(patient("Premier"), "urn:uuid:6b1f2a44-0c1e-4f0e-9d43-3f7a0c1d9e01")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("case", "body", "status", "expression"), BAD_PATIENTS, ids=BAD_IDS)
async def test_transaction_with_invalid_second_entry_writes_nothing(
    client: httpx.AsyncClient, case: str, body: Json, status: int, expression: str | None
) -> None:
    r = await client.post("", json=_transaction(GOOD_FIRST, _post_entry(body)))
    outcome = assert_outcome(r, status)
    said = " ".join(i["diagnostics"] for i in outcome["issue"]) + " ".join(_expressions(outcome))
    assert "entry[1]" in said, outcome
    if expression is not None:
        assert expression.rsplit(".", 1)[-1] in said, outcome


async def test_transaction_with_invalid_update_entry_writes_nothing(
    client: httpx.AsyncClient, existing: Json
) -> None:
    bad_update = {
        "resource": {**existing, "gender": "xx"},
        "request": {"method": "PUT", "url": f"Patient/{existing['id']}"},
    }
    r = await client.post("", json=_transaction(GOOD_FIRST, bad_update))
    assert_outcome(r, 422, "Patient.gender")


@pytest.mark.usefixtures("unchanged")
async def test_transaction_with_mismatched_put_id_writes_nothing(client: httpx.AsyncClient) -> None:
    mismatched = {
        "resource": patient(id="other-id"),
        "request": {"method": "PUT", "url": "Patient/tx-mismatched-id"},
    }
    assert_outcome(await client.post("", json=_transaction(GOOD_FIRST, mismatched)), 400, "id")


@pytest.mark.usefixtures("unchanged")
async def test_transaction_entry_without_resource_type_writes_nothing(client: httpx.AsyncClient) -> None:
    no_type = {"resource": _without("resourceType"), "request": {"method": "POST", "url": "Patient"}}
    assert_outcome(await client.post("", json=_transaction(GOOD_FIRST, no_type)), 400, "resourceType")


@pytest.mark.usefixtures("unchanged")
async def test_transaction_entry_with_allergy_status_outside_value_set_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    allergy = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "cured"}]},
        "patient": {"reference": GOOD_FIRST["fullUrl"]},
    }
    r = await client.post("", json=_transaction(GOOD_FIRST, _post_entry(allergy)))
    assert_outcome(r, 422, "AllergyIntolerance.clinicalStatus")


@pytest.mark.usefixtures("unchanged")
async def test_oversized_transaction_is_413(client: httpx.AsyncClient) -> None:
    entries = [_post_entry(patient("x" * 1000)) for _ in range(250)]
    assert_outcome(await client.post("", json=_transaction(*entries)), 413)


@pytest.mark.usefixtures("unchanged")
async def test_transaction_with_unsupported_media_type_is_415(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "", content=orjson.dumps(_transaction(GOOD_FIRST)), headers={"Content-Type": "application/xml"}
    )
    assert_outcome(r, 415)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "body",
    [[GOOD_FIRST], {"resourceType": "Patient"}, {"resourceType": "Bundle", "type": "collection"}],
    ids=["array", "not-a-bundle", "collection-bundle"],
)
async def test_base_url_refuses_what_is_not_a_batch_or_transaction(
    client: httpx.AsyncClient, body: Any
) -> None:
    assert_outcome(await client.post("", json=body), 400)
