"""Composite parameters: the components must hold for the same element."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

LOINC = "http://loinc.org"


async def _create(client: httpx.AsyncClient, resource: dict[str, Any]) -> str:
    r = await client.post(resource["resourceType"], json=resource)
    assert r.status_code == 201, r.text
    rid: str = r.json()["id"]
    return rid


def _document(*relations: tuple[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"contentType": "application/pdf", "url": "http://example.org/d.pdf"}}],
    }
    if relations:
        doc["relatesTo"] = [{"code": code, "target": {"reference": target}} for code, target in relations]
    return doc


async def _matches(client: httpx.AsyncClient, rtype: str, **params: str) -> set[str]:
    r = await client.get(rtype, params=params)
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


@pytest.fixture(scope="module")
async def documents(client: httpx.AsyncClient) -> dict[str, str]:
    a = await _create(client, _document())
    b = await _create(client, _document())
    # Replaces a and appends b: "replaces b" is true of no single relatesTo element.
    mixed = await _create(
        client, _document(("replaces", f"DocumentReference/{a}"), ("appends", f"DocumentReference/{b}"))
    )
    plain = await _create(client, _document(("replaces", f"DocumentReference/{b}")))
    return {"a": a, "b": b, "mixed": mixed, "plain": plain}


async def test_relationship_matches_code_and_target_of_one_element(
    client: httpx.AsyncClient, documents: dict[str, str]
) -> None:
    a, b = documents["a"], documents["b"]
    found = await _matches(client, "DocumentReference", relationship=f"replaces$DocumentReference/{a}")
    assert found == {documents["mixed"]}
    found = await _matches(client, "DocumentReference", relationship=f"replaces$DocumentReference/{b}")
    assert found == {documents["plain"]}  # not "mixed": its replaces and its b are two elements
    found = await _matches(client, "DocumentReference", relationship=f"appends${b}")  # a bare id
    assert found == {documents["mixed"]}


async def test_relationship_or_values(client: httpx.AsyncClient, documents: dict[str, str]) -> None:
    a, b = documents["a"], documents["b"]
    value = f"replaces$DocumentReference/{a},appends$DocumentReference/{b}"
    assert await _matches(client, "DocumentReference", relationship=value) == {documents["mixed"]}


async def test_group_characteristic_value(client: httpx.AsyncClient) -> None:
    system = f"urn:test:{uuid.uuid4().hex[:8]}"

    def group(value: bool) -> dict[str, Any]:
        return {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "characteristic": [
                {
                    "code": {"coding": [{"system": system, "code": "consent"}]},
                    "valueBoolean": value,
                    "exclude": False,
                }
            ],
        }

    yes = await _create(client, group(True))
    no = await _create(client, group(False))
    assert await _matches(client, "Group", **{"characteristic-value": f"{system}|consent$true"}) == {yes}
    assert await _matches(client, "Group", **{"characteristic-value": f"{system}|consent$false"}) == {no}


@pytest.mark.parametrize(
    "value",
    ["replaces", "replaces$DocumentReference/x$extra", "http://s|$DocumentReference/x", "$"],
)
async def test_malformed_composite_values_are_a_400(client: httpx.AsyncClient, value: str) -> None:
    r = await client.get("DocumentReference", params={"relationship": value})
    assert r.status_code == 400, r.text
    assert r.json()["issue"][0]["expression"] == ["relationship"]


async def test_escaped_dollar_is_part_of_a_component(client: httpx.AsyncClient) -> None:
    r = await client.get("DocumentReference", params={"relationship": "rep\\$laces$DocumentReference/x"})
    assert r.status_code == 200, r.text
    assert r.json().get("entry", []) == []
