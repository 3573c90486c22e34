"""The CapabilityStatement served at /metadata is the committed capability_statement.json."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.conftest import BASE

# A well-formed value of each kind: the point is that every advertised parameter is answered.
_SAMPLE = {
    "_id": "some-id",
    "string": "x",
    "token": "x",
    "date": "ge2024-01",
    "number": "1",
    "quantity": "1",
    "reference": "Patient/x",
    "uri": "http://x.org/a",
    "composite": "a$b",
}
COMMITTED = Path(__file__).resolve().parents[2] / "capability_statement.json"


async def test_metadata_equals_committed_statement(client: httpx.AsyncClient) -> None:
    r = await client.get("metadata")
    assert r.status_code == 200
    served = r.json()
    assert served["implementation"].pop("url") == BASE
    # The OAuth endpoints depend on the base URL: checked in test_security_names_the_oauth_endpoints.
    served["rest"][0]["security"].pop("extension")
    assert served == orjson.loads(COMMITTED.read_bytes()), (
        "capability_statement.json is stale: regenerate it with `fhir-server capability > capability_statement.json`"
    )


async def test_every_advertised_search_parameter_is_answered(client: httpx.AsyncClient) -> None:
    statement = (await client.get("metadata")).json()
    for resource in statement["rest"][0]["resource"]:
        for param in resource.get("searchParam", []):
            value = _SAMPLE.get(param["name"], _SAMPLE[param["type"]])
            r = await client.get(resource["type"], params={param["name"]: value})
            assert r.status_code == 200, (resource["type"], param["name"], r.text)


async def test_security_names_the_oauth_endpoints(client: httpx.AsyncClient) -> None:
    security = (await client.get("metadata")).json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    (uris,) = [e for e in security["extension"] if e["url"].endswith("/oauth-uris")]
    urls = {e["url"]: e["valueUri"] for e in uris["extension"]}
    smart = (await client.get(".well-known/smart-configuration")).json()
    assert urls["authorize"] == smart["authorization_endpoint"] == f"{BASE}/auth/authorize"
    assert urls["token"] == smart["token_endpoint"] == f"{BASE}/auth/token"
    assert urls["revoke"] == smart["revocation_endpoint"]
    assert urls["introspect"] == smart["introspection_endpoint"]
