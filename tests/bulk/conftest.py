"""Fixtures of the export tests: an app of its own (no in-process workers, small files, short leases),
so each test decides when the workers run; helpers for the kick-off, status and file round trip."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from fhir_server.app import create_app
from fhir_server.bulk.worker import ExportWorker
from fhir_server.config import Settings
from tests.conftest import BASE, bearer

KICK_OFF = {"Accept": "application/fhir+json", "Prefer": "respond-async"}


@pytest.fixture(scope="session")
def bulk_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return dataclasses.replace(
        settings,
        mongo_db=f"bulk_{uuid.uuid4().hex[:8]}",
        export_dir=str(tmp_path_factory.mktemp("exports")),
        export_workers=0,
        export_file_max_bytes=4000,
        export_lease=2,
        export_max_jobs_per_client=3,
        pseudonym_secret="",
    )


@pytest.fixture(scope="session")
async def bulk_app(bulk_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(bulk_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def bulk(bulk_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The export app over ASGI with a ``system/*.*`` backend token."""
    async with client_for(bulk_app, await bearer(bulk_app, "system/*.*")) as c:
        yield c


def client_for(app: FastAPI, headers: dict[str, str]) -> httpx.AsyncClient:
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE + "/")
    c.headers["Content-Type"] = "application/fhir+json"
    c.headers.update(headers)
    return c


def worker(app: FastAPI) -> ExportWorker:
    """An export worker of the app's database (run it with ``run_pending``)."""
    s = app.state.services
    return ExportWorker(s.repo, s.engine, app.state.matrix, s.settings, app.state.export_jobs)


async def create(c: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    r = await c.post(resource["resourceType"], json=resource)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def kick_off(
    c: httpx.AsyncClient,
    path: str = "$export",
    params: Any = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Start an export; the status URL."""
    r = await c.get(path, params=params, headers={**KICK_OFF, **(headers or {})})
    assert r.status_code == 202, r.text
    return r.headers["Content-Location"]


async def export(
    app: FastAPI, c: httpx.AsyncClient, path: str = "$export", params: Any = None
) -> dict[str, Any]:
    """Kick off, let a worker do the job, and return the manifest."""
    status = await kick_off(c, path, params)
    await worker(app).run_pending()
    r = await c.get(status)
    assert r.status_code == 200, r.text
    manifest: dict[str, Any] = r.json()
    return manifest


async def resources(
    c: httpx.AsyncClient, manifest: dict[str, Any], key: str = "output"
) -> list[dict[str, Any]]:
    """Every line of every file of ``manifest[key]``, in order."""
    out = []
    for item in manifest.get(key) or []:
        r = await c.get(item["url"])
        assert r.status_code == 200, r.text
        lines = [orjson.loads(line) for line in r.content.splitlines() if line]
        assert len(lines) == item["count"]
        out += lines
    return out


def by_type(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for res in found:
        out.setdefault(res["resourceType"], []).append(res)
    return out


def export_files(settings: Settings) -> list[Path]:
    return sorted(Path(settings.export_dir).rglob("*.ndjson"))
