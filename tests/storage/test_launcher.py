"""The embedded database: started on demand, reused while running, data kept across restarts."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from fhir_server.config import Settings
from fhir_server.storage.launcher import start_database, stop_database

pytestmark = pytest.mark.skipif(bool(os.environ.get("FHIR_TEST_MONGO_URI")), reason="embedded database only")


async def test_data_survives_restart_and_running_database_is_reused(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), mongo_uri="", data_dir=tmp_path, embedded_cache_size="128M")
    first = await start_database(settings)
    assert first.owned
    assert (tmp_path / "embedded.json").exists()
    try:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(first.uri)
        await client.fhir.Patient.insert_one({"_id": "kept", "v": 1})
        await client.close()
        # A second user of the same data directory reaches the same database instead of starting one.
        second = await start_database(settings)
        assert not second.owned and second.uri == first.uri
        # A CLI command run while the database is up uses it too.
        out = subprocess.run(
            [sys.executable, "-m", "fhir_server.cli", "counts", "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "FHIR_MONGO_URI": ""},
        )
        assert out.returncode == 0, out.stderr
    finally:
        await stop_database(first)
    assert not (tmp_path / "embedded.json").exists()
    restarted = await start_database(settings)
    try:
        assert restarted.owned
        client = AsyncMongoClient(restarted.uri)
        assert await client.fhir.Patient.find_one({"_id": "kept"}) == {"_id": "kept", "v": 1}
        await client.close()
    finally:
        await stop_database(restarted)


def test_cli_counts_starts_and_stops_its_own_database(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fhir_server.cli", "counts", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FHIR_MONGO_URI": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "Patient" in out.stdout and "0" in out.stdout
    assert not (tmp_path / "embedded.json").exists()
