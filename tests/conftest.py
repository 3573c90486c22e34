"""Test fixtures: one real embedded database (SecantusDB over TCP) per test session, the app over ASGI,
and a real uvicorn server on a free port where a test needs true concurrent HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from fhir_server.app import create_app
from fhir_server.auth.tokens import Tokens
from fhir_server.config import Settings
from fhir_server.storage.client import Mongo
from fhir_server.storage.launcher import Database, start_database, stop_database

BASE = "http://test/fhir"
# The resource types the foundation issue asks for, written out independently of the code's registry.
SERVED_BY_ISSUE = frozenset(
    {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "DocumentReference",
        "Binary",
        "AllergyIntolerance",
        "MedicationStatement",
        "Medication",
        "Claim",
        "ExplanationOfBenefit",
        "Coverage",
        "Consent",
        "AuditEvent",
        "Provenance",
        "Group",
    }
)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "fhir-r4"


@pytest.fixture(scope="session")
async def database_uri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A MongoDB-wire server for the whole session: ``FHIR_TEST_MONGO_URI`` or embedded SecantusDB."""
    given = os.environ.get("FHIR_TEST_MONGO_URI")
    if given:
        yield given
        return
    settings = dataclasses.replace(
        Settings(), mongo_uri="", data_dir=tmp_path_factory.mktemp("embedded"), embedded_cache_size="256M"
    )
    db: Database = await start_database(settings)
    try:
        yield db.uri
    finally:
        await stop_database(db)


@pytest.fixture(scope="session")
def settings(database_uri: str) -> Settings:
    """Settings of the app under test: its own database name, so runs never see each other's data."""
    return dataclasses.replace(
        Settings(),
        mongo_uri=database_uri,
        mongo_db=f"test_{uuid.uuid4().hex[:8]}",
        base_url=BASE,
        access_log=False,
        max_body_bytes=200_000,
        default_page_size=20,
        max_page_size=100,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def bearer(app: FastAPI, scope: str, base: str = BASE, **claims: Any) -> dict[str, str]:
    """An ``Authorization`` header with an access token of the app's keys for the server at ``base``."""
    auth = app.state.auth
    tokens = Tokens(auth.keys, auth.tokens.revoked, base, base)
    token, _ = await tokens.issue(
        {"sub": "test-suite", "client_id": "test-suite", "scope": scope, **claims}, 3600
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI, as a backend client with every system scope (``system/*.*``)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE + "/") as c:
        c.headers["Content-Type"] = "application/fhir+json"
        c.headers.update(await bearer(app, "system/*.*"))
        yield c


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI without any token."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE + "/") as c:
        c.headers["Content-Type"] = "application/fhir+json"
        yield c


@pytest.fixture(scope="session")
def mongo(app: FastAPI) -> Mongo:
    """Direct database access, for asserting what was (not) written."""
    m: Mongo = app.state.mongo
    return m


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[str]:
    """A real uvicorn server (its own thread and event loop) on the same database; yields its base URL."""
    port = _free_port()
    live = dataclasses.replace(settings, host="127.0.0.1", port=port, base_url="")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(live), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/fhir"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="session")
async def live_headers(app: FastAPI, live_server: str) -> dict[str, str]:
    """Headers for the live server: FHIR JSON and a ``system/*.*`` token for its base URL."""
    return {"Content-Type": "application/fhir+json", **(await bearer(app, "system/*.*", live_server))}


async def snapshot(mongo: Mongo) -> dict[str, Any]:
    """Every document of every collection: compare before/after to prove nothing was written. Traces
    (AuditEvent) are left out: a refused request is traced, and that is all it may write."""
    out: dict[str, Any] = {}
    for name in sorted(await mongo.db.list_collection_names()):
        if name == "AuditEvent":
            continue
        query = {"t": {"$ne": "AuditEvent"}} if name == "history" else {}
        out[name] = [d async for d in mongo.db[name].find(query).sort("_id", 1)]
    return out


def patient(family: str = "Lefèvre", **extra: Any) -> dict[str, Any]:
    """A small valid Patient."""
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Hélène"]}],
        "gender": "female",
        "birthDate": "1980-04-12",
        **extra,
    }


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll an async predicate until it holds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
