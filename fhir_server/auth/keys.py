"""The server's token signing keys: ES256, kept in MongoDB so every server process signs and checks
with the same keys, rotated by age, the recent ones published at ``jwks_uri``.

A new key is made when the newest one is older than the rotation period; the previous keys stay
published (and accepted) for one more period, so tokens signed just before a rotation stay valid.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey, KeySet
from pymongo.asynchronous.database import AsyncDatabase

KEYS = "auth_keys"
ALGORITHM = "ES256"
# How often a process re-reads the key collection (another process may have rotated).
_RELOAD_S = 300.0


class SigningKeys:
    """The current signing key and the set of keys whose signatures are accepted."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], rotation_days: int) -> None:
        self._coll = db[KEYS]
        self._period = timedelta(days=max(rotation_days, 1))
        self._keys: list[ECKey] = []
        self._set = KeySet([])
        self._loaded_at = 0.0

    async def load(self) -> None:
        """Read the keys, making a new one when there is none young enough."""
        now = datetime.now(UTC)
        docs = (
            await self._coll.find({"created": {"$gt": now - 2 * self._period}}).sort("created", -1).to_list()
        )
        if not docs or docs[0]["created"] < now - self._period:
            kid = secrets.token_urlsafe(12)
            key = ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})
            doc = {"_id": kid, "jwk": key.as_dict(private=True), "created": now}
            await self._coll.insert_one(doc)
            docs.insert(0, doc)
        self._keys = [ECKey.import_key(d["jwk"]) for d in docs]
        self._set = KeySet(list(self._keys))
        self._loaded_at = time.monotonic()

    async def refresh(self) -> None:
        """Reload when the last read is old (cheap to call on every token issue or check miss)."""
        if time.monotonic() - self._loaded_at > _RELOAD_S:
            await self.load()

    @property
    def current(self) -> ECKey:
        """The key new tokens are signed with."""
        return self._keys[0]

    def has(self, kid: str) -> bool:
        return any(k.kid == kid for k in self._keys)

    @property
    def key_set(self) -> KeySet:
        """Every key whose signature is accepted."""
        return self._set

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set served at ``jwks_uri``."""
        return {"keys": [k.as_dict(private=False) for k in self._keys]}
