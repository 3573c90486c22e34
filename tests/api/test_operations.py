"""``$operation`` paths are dispatched to operations, never taken for a type or an id."""

from __future__ import annotations

import httpx


async def test_unknown_operation_is_404_at_every_level(client: httpx.AsyncClient) -> None:
    for path in ("$no-such-op", "Patient/$no-such-op", "Patient/abc/$no-such-op"):
        r = await client.get(path)
        assert r.status_code == 404, (path, r.text)
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert "$no-such-op" in outcome["issue"][0]["diagnostics"]


async def test_operation_on_unknown_type_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post("Nonsense/$validate", json={})
    assert r.status_code == 404
    assert "Nonsense" in r.json()["issue"][0]["diagnostics"]


async def test_operation_path_with_a_bad_id_is_400(client: httpx.AsyncClient) -> None:
    r = await client.get("Patient/bad id!/$everything")
    assert r.status_code == 400
