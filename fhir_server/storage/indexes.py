"""Indexes created at start-up: the storage's own, plus those the search layer asks for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

HISTORY = "history"

# One key list per index: [(field, direction), ...].
IndexKeys = Sequence[tuple[str, int]]

_HISTORY_INDEXES = [
    IndexModel([("t", ASCENDING), ("id", ASCENDING), ("v", DESCENDING)], name="instance_versions"),
    IndexModel([("t", ASCENDING), ("lu", DESCENDING), ("_id", DESCENDING)], name="type_history"),
    IndexModel([("lu", DESCENDING), ("_id", DESCENDING)], name="system_history"),
    # Patient and Group exports and the purge read patients' versions, not a whole type's.
    IndexModel([("comp", ASCENDING)], name="history_comp"),
]

# Every current-version collection: paging by last update and the live/deleted split.
_CURRENT_INDEXES: list[IndexKeys] = [
    [("lu", DESCENDING), ("_id", DESCENDING)],
]


def index_name(keys: IndexKeys) -> str:
    """The name an index with these keys is created under (and hinted by)."""
    return "_".join(f"{f}_{d}" for f, d in keys)


async def ensure_indexes(
    db: AsyncDatabase[dict[str, Any]], per_type: Mapping[str, Sequence[IndexKeys]]
) -> None:
    """Create (idempotently) the history indexes and, per resource type, the listed indexes."""
    await db[HISTORY].create_indexes(_HISTORY_INDEXES)
    for rtype, specs in per_type.items():
        models = [IndexModel(list(k), name=index_name(k)) for k in [*_CURRENT_INDEXES, *specs]]
        await db[rtype].create_indexes(models)
