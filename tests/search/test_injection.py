"""MongoDB operator injection through every parameter kind: a literal match or a 400, never more results."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import patient

ATTACKS = [
    '{"$ne": null}',
    '{"$gt": ""}',
    "$ne",
    "$where",
    "$where: function() { return true }",
    "this.a == 1",
    ".*",
    "^",
    "a|b|c|d",
    "[$ne]",
    "\\",
    "\\\\",
    "x" * 5000,
    "a\x00b",
    "'; return true; var x='",
    "(?i).*",
    "|",
    "$regex",
]

# One parameter per kind, on types where the world below has data.
PARAMS = [
    ("Patient", "family"),  # string
    ("Patient", "name:exact"),
    ("Patient", "name:contains"),
    ("Patient", "gender"),  # token
    ("Patient", "identifier"),
    ("Patient", "identifier:not"),
    ("Patient", "_id"),
    ("Patient", "birthdate"),  # date
    ("Patient", "_lastUpdated"),
    ("Patient", "organization"),  # reference
    ("Patient", "general-practitioner:identifier"),
    ("Patient", "organization.name"),  # chain
    ("Patient", "_has:AllergyIntolerance:patient:code"),
    ("Patient", "_profile"),  # uri
    ("Patient", "_tag"),
]


@pytest.fixture(scope="module")
async def tag(client: httpx.AsyncClient) -> str:
    value = uuid.uuid4().hex[:10]
    for i in range(3):
        r = await client.post(
            "Patient",
            json=patient(
                family=f"Inj{value}",
                meta={"tag": [{"code": value}]},
                identifier=[{"system": "urn:x", "value": f"{value}{i}"}],
            ),
        )
        assert r.status_code == 201
    return value


def _matches(body: dict[str, Any]) -> int:
    return len([e for e in body.get("entry", []) if e["search"]["mode"] == "match"])


@pytest.mark.parametrize(("rtype", "name"), PARAMS)
async def test_operator_injection_never_broadens(
    client: httpx.AsyncClient, tag: str, rtype: str, name: str
) -> None:
    for attack in ATTACKS:
        # Scoped by _tag so that "broader" would show as matches of the three patients made here.
        r = await client.get(rtype, params={"_tag": tag, name: attack})
        assert r.status_code in {200, 400}, (name, attack, r.status_code, r.text[:200])
        if r.status_code == 200:
            # A literal matches none of the three; under :not, that means all three (and no others).
            assert _matches(r.json()) == (3 if name.endswith(":not") else 0), (name, attack)
        else:
            assert r.json()["resourceType"] == "OperationOutcome"


async def test_bracket_and_dotted_parameter_names_are_not_fields(client: httpx.AsyncClient, tag: str) -> None:
    for name in [
        "name[$ne]",
        "family[$regex]",
        "idx.family",
        "res.gender",
        "$where",
        "del",
        "_id[$ne]",
        "family.$ne",
        "comp",
    ]:
        r = await client.get("Patient", params={"_tag": tag, name: "x"})
        # Unknown names are ignored (lenient) so the result is the three tagged patients, no more.
        assert r.status_code in {200, 400}, name
        if r.status_code == 200:
            assert _matches(r.json()) == 3, name
        strict = await client.get(
            "Patient", params={"_tag": tag, name: "x"}, headers={"Prefer": "handling=strict"}
        )
        assert strict.status_code == 400, name


async def test_regex_metacharacters_in_string_prefix_are_literal(client: httpx.AsyncClient, tag: str) -> None:
    r = await client.get("Patient", params={"family": "inj.*"})
    assert _matches(r.json()) == 0
    r = await client.get("Patient", params={"family": f"inj{tag}"})
    assert _matches(r.json()) == 3
