"""A scratch database for the kinds' round trips: index what ``extract`` stores, query what ``compile``
builds, and see which documents come back. This proves the two halves of a kind agree."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Find = Callable[..., Awaitable[set[str]]]
# The kind is a module (or anything shaped like one: ``extract`` and ``compile``).
MakeStore = Callable[[Any, dict[str, list[Any]], bool], Awaitable[Find]]


@pytest.fixture(scope="module")
async def kinds_db(database_uri: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_uri, tz_aware=True)
    db = client[f"kinds_{uuid.uuid4().hex[:8]}"]
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()


@pytest.fixture
def make_store(kinds_db: AsyncDatabase[dict[str, Any]]) -> MakeStore:
    """``await make_store(kind, {id: values}, single)`` indexes one document per id under ``idx.p`` and
    returns ``find(value, modifier)``: the ids the compiled condition selects."""

    async def make(kind: Any, docs: dict[str, list[Any]], single: bool) -> Find:
        coll = kinds_db[uuid.uuid4().hex]
        rows = []
        for rid, values in docs.items():
            idx = {f"p:{k}" if k else "p": v for k, v in kind.extract(values, single).items()}
            rows.append({"_id": rid, "idx": idx})
        await coll.insert_many(rows)

        async def find(value: str, modifier: str = "") -> set[str]:
            cond = kind.compile("idx.p", value, modifier, "p", single)
            return {d["_id"] async for d in coll.find(cond)}

        return find

    return make
