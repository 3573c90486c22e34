"""Expired authorization records (sessions, codes, refresh tokens, revocations…) are purged; live ones stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fhir_server.auth.store import EXPIRING, purge_expired
from fhir_server.storage.client import Mongo


async def test_purge_removes_only_what_expired(mongo: Mongo) -> None:
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex
    for name, moment in EXPIRING:
        await mongo.db[name].insert_many(
            [
                {"_id": f"{tag}-old", moment: now - timedelta(seconds=1)},
                {"_id": f"{tag}-live", moment: now + timedelta(hours=1)},
            ]
        )
    assert await purge_expired(mongo.db) >= len(EXPIRING)
    for name, _ in EXPIRING:
        left = {d["_id"] async for d in mongo.db[name].find({"_id": {"$regex": f"^{tag}"}})}
        assert left == {f"{tag}-live"}, name
        await mongo.db[name].delete_many({"_id": f"{tag}-live"})
