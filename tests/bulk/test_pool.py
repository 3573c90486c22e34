"""The server's own worker pool (FHIR_EXPORT_WORKERS) does the exports without any separate process."""

from __future__ import annotations

import asyncio
import dataclasses

from fhir_server.app import create_app
from fhir_server.config import Settings
from tests.bulk.conftest import client_for, kick_off
from tests.conftest import bearer, patient


async def test_the_worker_pool_in_the_server_finishes_an_export(bulk_settings: Settings) -> None:
    app = create_app(dataclasses.replace(bulk_settings, export_workers=1))
    async with app.router.lifespan_context(app), client_for(app, await bearer(app, "system/*.*")) as c:
        assert (await c.post("Patient", json=patient("Pool"))).status_code == 201
        status = await kick_off(c, params={"_type": "Patient"})
        for _ in range(200):
            r = await c.get(status)
            if r.status_code == 200:
                break
            assert r.status_code == 202
            await asyncio.sleep(float(r.headers["Retry-After"]) / 20)
        assert r.status_code == 200
        assert r.json()["output"][0]["type"] == "Patient"
