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
}
COMMITTED = Path(__file__).resolve().parents[2] / "capability_statement.json"


async def test_metadata_equals_committed_statement(client: httpx.AsyncClient) -> None:
    r = await client.get("metadata")
    assert r.status_code == 200
    served = r.json()
    assert served["implementation"].pop("url") == BASE
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
