"""The MongoDB connection: one async client per process, durable writes, indexes at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bson.codec_options import TypeDecoder, TypeEncoder, TypeRegistry
from bson.decimal128 import Decimal128
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from fhir_server.storage.indexes import IndexKeys, ensure_indexes

Document = dict[str, Any]


class _DecimalEncoder(TypeEncoder):
    python_type = Decimal

    def transform_python(self, value: Decimal) -> Decimal128:
        return Decimal128(value)


class _DecimalDecoder(TypeDecoder):
    bson_type = Decimal128

    def transform_bson(self, value: Decimal128) -> Decimal:
        return value.to_decimal()


# FHIR decimals are stored as Decimal128 so that their digits (``105.00``) survive.
_DECIMALS = TypeRegistry([_DecimalEncoder(), _DecimalDecoder()])

# Every acknowledged write is on disk and on a majority of the replica set.
DURABLE = WriteConcern(w="majority", j=True)


_INDEX_ATTEMPTS = 5


class Mongo:
    """The client and database handle shared by the repository and the CLI."""

    def __init__(self, uri: str, db_name: str) -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            tz_aware=True,
            type_registry=_DECIMALS,
            serverSelectionTimeoutMS=10_000,
            appname="fhir-server",
        )
        self.db: AsyncDatabase[Document] = self.client.get_database(
            db_name, write_concern=DURABLE, read_concern=ReadConcern("majority")
        )

    async def open(self, indexes: Mapping[str, Sequence[IndexKeys]]) -> None:
        """Check the database answers and create the indexes the server relies on."""
        await self.client.admin.command("ping")
        # Index builds are idempotent; a busy embedded database can miss a heartbeat while it builds,
        # which makes the driver drop the connection mid-command: try again rather than fail start-up.
        for attempt in range(_INDEX_ATTEMPTS):
            try:
                await ensure_indexes(self.db, indexes)
                return
            except AutoReconnect:
                if attempt == _INDEX_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(1 + attempt)

    async def ping(self) -> bool:
        """Whether the database answers now (for ``/health``)."""
        try:
            await self.client.admin.command("ping")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.client.close()
