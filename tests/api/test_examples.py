"""Every HL7 R4 example of a served type that the R4B models accept round-trips through the server
unchanged: create then read gives back what was sent (only the id and meta.versionId/lastUpdated are the
server's), and an update with the example's own id creates it."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from tests.conftest import SERVED_BY_ISSUE, SHARED

Json = dict[str, Any]
EXAMPLES = SHARED / "examples"
SERVED = SERVED_BY_ISSUE

if not EXAMPLES.is_dir():
    pytest.skip(f"the HL7 examples are not available at {EXAMPLES}", allow_module_level=True)


def _accepted_by_models(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    rtype = data.get("resourceType") if isinstance(data, dict) else None
    if rtype not in SERVED:
        return False
    try:
        get_fhir_model_class(rtype).model_validate(data)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


NAMES = sorted(p.name for p in EXAMPLES.glob("*.json") if _accepted_by_models(p))
# AuditEvents are written by the server only (a write through the API is a 405: tests/auth/test_audit.py).
READ_ONLY = {"AuditEvent"}


@cache
def _load(name: str) -> str:
    return (EXAMPLES / name).read_text(encoding="utf-8")


def example(name: str) -> Json:
    """A fresh copy of the example (tests may not share mutable state)."""
    data: Json = json.loads(_load(name))
    return data


def _comparable(resource: Json) -> Json:
    """The resource without what the server owns: ``id``, ``meta.versionId`` and ``meta.lastUpdated``."""
    out = {k: v for k, v in resource.items() if k != "id"}
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in {"versionId", "lastUpdated"}}
    out.pop("meta", None)
    if meta:
        out["meta"] = meta
    return out


def _diff(sent: Any, got: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as readable paths (for failure messages)."""
    if isinstance(sent, dict) and isinstance(got, dict):
        out = []
        for key in sorted(set(sent) | set(got)):
            if key not in got:
                out.append(f"{path}.{key}: dropped")
            elif key not in sent:
                out.append(f"{path}.{key}: added {got[key]!r:.80}")
            else:
                out += _diff(sent[key], got[key], f"{path}.{key}")
        return out
    if isinstance(sent, list) and isinstance(got, list) and len(sent) == len(got):
        return [
            d for i, (a, b) in enumerate(zip(sent, got, strict=True)) for d in _diff(a, b, f"{path}[{i}]")
        ]
    return [] if sent == got and type(sent) is type(got) else [f"{path}: sent {sent!r:.80}, got {got!r:.80}"]


def test_the_examples_cover_every_served_type() -> None:
    covered = {json.loads(_load(name))["resourceType"] for name in NAMES}
    assert covered == SERVED, f"no accepted example for {sorted(SERVED - covered)}"


def _writable(names: list[str]) -> list[str]:
    return [n for n in names if json.loads(_load(n))["resourceType"] not in READ_ONLY]


@pytest.mark.parametrize("name", _writable(NAMES))
async def test_example_round_trips_through_create_and_read(client: httpx.AsyncClient, name: str) -> None:
    sent = example(name)
    rtype = sent["resourceType"]
    r = await client.post(rtype, json=sent)
    assert r.status_code == 201, f"{name} was refused: {r.text}"
    created = r.json()
    assert created["meta"]["versionId"] == "1"
    assert _diff(_comparable(sent), _comparable(created)) == []

    read = await client.get(f"{rtype}/{created['id']}")
    assert read.status_code == 200, read.text
    got = read.json()
    assert got == created
    assert got["id"] == created["id"]
    assert _diff(_comparable(sent), _comparable(got)) == []


def _first_example_of_each_type() -> list[str]:
    firsts: dict[str, str] = {}
    for name in NAMES:
        firsts.setdefault(json.loads(_load(name))["resourceType"], name)
    return _writable(sorted(firsts.values()))


# One example per type: every example's content already goes through validation and storage above; what
# this adds (update-as-create with the client's id, then a new version) does not depend on the content.
@pytest.mark.parametrize("name", _first_example_of_each_type())
async def test_example_update_with_its_own_id_creates_then_updates(
    client: httpx.AsyncClient, name: str
) -> None:
    sent = example(name)
    rtype, rid = sent["resourceType"], sent["id"]
    # Another test may already have stored this id: remove it so the PUT is a create again
    # (re-creating after a delete answers 201 and keeps the version sequence).
    await client.delete(f"{rtype}/{rid}")
    r = await client.put(f"{rtype}/{rid}", json=sent)
    assert r.status_code == 201, f"{name} was refused: {r.text}"
    assert r.headers["location"].endswith(f"/{rtype}/{rid}/_history/{r.json()['meta']['versionId']}")
    assert r.json()["id"] == rid
    assert _diff(_comparable(sent), _comparable(r.json())) == []

    again = await client.put(f"{rtype}/{rid}", json=sent)
    assert again.status_code == 200, again.text
    assert int(again.json()["meta"]["versionId"]) == int(r.json()["meta"]["versionId"]) + 1

    read = (await client.get(f"{rtype}/{rid}")).json()
    assert read == again.json()
    assert _diff(_comparable(sent), _comparable(read)) == []


@pytest.mark.parametrize("name", _first_example_of_each_type())
async def test_example_meta_profile_tag_security_and_source_are_kept(
    client: httpx.AsyncClient, name: str
) -> None:
    sent = example(name)
    sent["meta"] = {
        "versionId": "99",
        "lastUpdated": "2001-01-01T00:00:00Z",
        "source": "urn:uuid:0b6d4c3e-2f0a-4f4b-8b1e-1b7e2b0c9d10",
        "profile": [f"http://example.org/fhir/StructureDefinition/dmp-{sent['resourceType']}"],
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
        "tag": [{"system": "http://example.org/tags", "code": "import", "display": "imported"}],
    }
    r = await client.post(sent["resourceType"], json=sent)
    assert r.status_code == 201, r.text
    got = (await client.get(f"{sent['resourceType']}/{r.json()['id']}")).json()
    assert got["meta"]["versionId"] == "1"
    assert got["meta"]["lastUpdated"] != "2001-01-01T00:00:00Z"
    assert _diff(_comparable(sent), _comparable(got)) == []


@pytest.mark.parametrize(
    "name", [n for n in _writable(NAMES) if re.search(r":\s*-?\d+\.\d*0\s*[,}\n]", _load(n))]
)
async def test_example_decimal_precision_is_kept(client: httpx.AsyncClient, name: str) -> None:
    # FHIR R4 JSON: the precision of a decimal is significant (105.00 is not 105.0) and must be kept,
    # so the raw bytes are sent and the raw response is inspected.
    raw = _load(name)
    sent_decimals = sorted(re.findall(r"(?<=:)\s*(-?\d+\.\d+)(?=\s*[,}\n])", raw))
    rtype = json.loads(raw)["resourceType"]
    r = await client.post(rtype, content=raw.encode("utf-8"))
    assert r.status_code == 201, r.text
    read = await client.get(f"{rtype}/{r.json()['id']}")
    served_decimals = sorted(re.findall(r"(?<=:)\s*(-?\d+\.\d+)(?=\s*[,}\n])", read.text))
    assert [d.strip() for d in served_decimals] == [d.strip() for d in sent_decimals]
