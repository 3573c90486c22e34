"""The authorization server's short-lived state in MongoDB, each collection with a TTL index.

``auth_sessions``  browser login sessions {_id: sha256(cookie), user_id, auth_time, exp}
``auth_requests``  authorization requests waiting for login/approval {_id, browser: sha256(cookie), csrf,
                   params, exp, upstream: {state, nonce, verifier} | None}
``auth_codes``     authorization codes {_id: sha256(code), ..., used, issued: {jti, exp, family} | None}
``auth_refresh``   refresh tokens {_id: sha256(token), family, ..., used, access: {jti, exp}}
``auth_launches``  EHR launch contexts {_id: launch id, client_id, patient, encounter, exp}
``auth_jtis``      client-assertion ``jti`` already seen {_id: "iss jti", exp}

Codes, refresh tokens and session cookies are stored hashed: a database read gives nothing usable.
Codes and refresh tokens are marked used rather than deleted, so that a second use is recognised (and
the tokens of the first one revoked) until the record expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oidc.core import AuthorizationCodeMixin
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from fhir_server.auth.tokens import REVOKED

log = logging.getLogger("fhir_server.auth")

SESSIONS = "auth_sessions"
REQUESTS = "auth_requests"
CODES = "auth_codes"
REFRESH = "auth_refresh"
LAUNCHES = "auth_launches"
JTIS = "auth_jtis"

CODE_TTL_S = 120
# A used code is remembered this long, to recognise (and punish) a second use.
CODE_MEMORY_S = 3600
REQUEST_TTL_S = 1800
LAUNCH_TTL_S = 600


def digest(value: str) -> str:
    """What is stored in place of a secret value (code, refresh token, cookie)."""
    return hashlib.sha256(value.encode()).hexdigest()


def _at(seconds_from_now: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds_from_now)


def _now() -> datetime:
    return datetime.now(UTC)


# Collections whose records expire, with the field holding the moment. Every read filters on it; a
# periodic purge (purge_expired) removes what has expired. Not TTL indexes: the embedded SecantusDB's
# TTL sweeper alone kept ~0.2 of a core busy on an idle server (measured).
EXPIRING = (
    (SESSIONS, "exp"),
    (REQUESTS, "exp"),
    (CODES, "purge"),
    (REFRESH, "exp"),
    (LAUNCHES, "exp"),
    (JTIS, "exp"),
    (REVOKED, "exp"),
)


async def create_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """The indexes of the authorization server's collections."""
    for name, moment in EXPIRING:
        await db[name].create_indexes([IndexModel([(moment, ASCENDING)])])
    await db[REQUESTS].create_indexes([IndexModel([("upstream.state", ASCENDING)], sparse=True)])
    await db[REFRESH].create_indexes([IndexModel([("family", ASCENDING)])])


async def purge_expired(db: AsyncDatabase[dict[str, Any]]) -> int:
    """Delete the expired records of every expiring collection; how many were deleted."""
    now = _now()
    deleted = 0
    for name, moment in EXPIRING:
        deleted += (await db[name].delete_many({moment: {"$lte": now}})).deleted_count
    return deleted


async def purge_loop(db: AsyncDatabase[dict[str, Any]], interval: float) -> None:
    """Run :func:`purge_expired` now and every ``interval`` seconds (a background task of the app)."""
    while True:
        try:
            await purge_expired(db)
        except PyMongoError:
            log.warning("purging expired authorization records failed; will retry", exc_info=True)
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class LaunchContext:
    """What a token is about besides its scopes: the patient (and encounter) in context."""

    patient: str | None = None
    encounter: str | None = None
    need_patient_banner: bool = False

    def as_doc(self) -> dict[str, Any]:
        return {"patient": self.patient, "encounter": self.encounter, "banner": self.need_patient_banner}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> LaunchContext:
        return cls(doc.get("patient"), doc.get("encounter"), bool(doc.get("banner")))


@dataclass(frozen=True)
class AuthCode(AuthorizationCodeMixin):
    """A claimed authorization code, as Authlib's code grant and PKCE extension read it."""

    hashed: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: str
    context: LaunchContext
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    auth_time: int
    session: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass(frozen=True)
class RefreshRecord:
    """A refresh token's record: who, for which client, which scopes and context."""

    hashed: str
    family: str
    client_id: str
    user_id: str
    scope: str
    context: LaunchContext
    session: str | None
    exp: datetime
    used: bool = False
    access: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RefreshRecord:
        return cls(
            doc["_id"],
            doc["family"],
            doc["client_id"],
            doc["user_id"],
            doc["scope"],
            LaunchContext.from_doc(doc.get("context") or {}),
            doc.get("session"),
            doc["exp"],
            bool(doc.get("used")),
            doc.get("access") or {},
        )

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class Issued:
    """The tokens one grant produced, so they can be revoked together."""

    jti: str
    exp: int
    family: str | None


class Store:
    """Reads and writes of the collections above."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db

    # Browser sessions -------------------------------------------------------------------------------

    async def open_session(self, user_id: str, ttl: int) -> str:
        """Start a login session; returns the cookie value (a fresh one each login)."""
        cookie = secrets.token_urlsafe(32)
        doc = {"_id": digest(cookie), "user_id": user_id, "auth_time": int(time.time()), "exp": _at(ttl)}
        await self.db[SESSIONS].insert_one(doc)
        return cookie

    async def session(self, cookie: str | None) -> dict[str, Any] | None:
        """The live session a cookie belongs to."""
        if not cookie:
            return None
        return await self.db[SESSIONS].find_one({"_id": digest(cookie), "exp": {"$gt": _now()}})

    async def session_alive(self, hashed: str) -> bool:
        return await self.db[SESSIONS].count_documents({"_id": hashed, "exp": {"$gt": _now()}}, limit=1) == 1

    # Pending authorization requests -----------------------------------------------------------------

    async def save_request(self, params: dict[str, str], browser: str) -> dict[str, Any]:
        """Remember a validated authorization request for the browser with cookie ``browser``."""
        doc = {
            "_id": secrets.token_urlsafe(16),
            "browser": digest(browser),
            "csrf": secrets.token_urlsafe(24),
            "params": params,
            "exp": _at(REQUEST_TTL_S),
        }
        await self.db[REQUESTS].insert_one(doc)
        return doc

    async def pending(self, rid: str, browser: str | None) -> dict[str, Any] | None:
        """The pending request ``rid``, if it is live and was made by this browser."""
        if not browser or not rid:
            return None
        query = {"_id": rid, "browser": digest(browser), "exp": {"$gt": _now()}}
        return await self.db[REQUESTS].find_one(query)

    async def rebind_request(self, rid: str, browser: str) -> None:
        """Move a pending request to a new browser cookie (the cookie changes at login)."""
        await self.db[REQUESTS].update_one({"_id": rid}, {"$set": {"browser": digest(browser)}})

    async def set_upstream(self, rid: str, upstream: dict[str, str]) -> None:
        await self.db[REQUESTS].update_one({"_id": rid}, {"$set": {"upstream": upstream}})

    async def pending_by_upstream_state(self, state: str, browser: str | None) -> dict[str, Any] | None:
        if not browser or not state:
            return None
        query = {"upstream.state": state, "browser": digest(browser), "exp": {"$gt": _now()}}
        return await self.db[REQUESTS].find_one(query)

    async def finish_request(self, rid: str) -> bool:
        """Consume a pending request; False when another submission consumed it first."""
        return (await self.db[REQUESTS].delete_one({"_id": rid})).deleted_count == 1

    # Authorization codes ----------------------------------------------------------------------------

    async def save_code(self, code: str, fields: dict[str, Any]) -> None:
        doc = {
            **fields,
            "_id": digest(code),
            "exp": _at(CODE_TTL_S),
            "purge": _at(CODE_MEMORY_S),
            "used": False,
            "issued": None,
        }
        await self.db[CODES].insert_one(doc)

    async def claim_code(self, code: str, client_id: str) -> AuthCode | dict[str, Any] | None:
        """Mark a code used and return it; a code used before comes back as its raw record (so the
        caller can revoke what it produced); None when there is no such live code for this client."""
        hashed = digest(code)
        doc = await self.db[CODES].find_one_and_update(
            {"_id": hashed, "client_id": client_id, "used": False, "exp": {"$gt": _now()}},
            {"$set": {"used": True}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            again = await self.db[CODES].find_one_and_update(
                {"_id": hashed, "client_id": client_id, "used": True},
                {"$set": {"reused": True}},
                return_document=ReturnDocument.AFTER,
            )
            return again
        return AuthCode(
            hashed,
            doc["client_id"],
            doc["redirect_uri"],
            doc["scope"],
            doc["user_id"],
            LaunchContext.from_doc(doc.get("context") or {}),
            doc.get("code_challenge"),
            doc.get("code_challenge_method"),
            doc.get("nonce"),
            int(doc.get("auth_time") or 0),
            doc.get("session"),
        )

    async def record_code_issue(self, hashed: str, issued: Issued) -> bool:
        """Note what a code produced; False when a second use of the code came meanwhile."""
        doc = await self.db[CODES].find_one_and_update(
            {"_id": hashed},
            {"$set": {"issued": {"jti": issued.jti, "exp": issued.exp, "family": issued.family}}},
            return_document=ReturnDocument.AFTER,
        )
        return not (doc and doc.get("reused"))

    async def nonce_seen(self, client_id: str, nonce: str) -> bool:
        return await self.db[CODES].count_documents({"client_id": client_id, "nonce": nonce}, limit=1) == 1

    # Refresh tokens ---------------------------------------------------------------------------------

    async def save_refresh(
        self,
        token: str,
        family: str,
        fields: dict[str, Any],
        lifetime: int,
        access: Issued,
    ) -> None:
        doc = {
            **fields,
            "_id": digest(token),
            "family": family,
            "exp": _at(lifetime),
            "used": False,
            "access": {"jti": access.jti, "exp": access.exp},
        }
        await self.db[REFRESH].insert_one(doc)

    async def refresh(self, token: str) -> RefreshRecord | None:
        """The record of a refresh token (used or not) that has not expired."""
        doc = await self.db[REFRESH].find_one({"_id": digest(token), "exp": {"$gt": _now()}})
        return RefreshRecord.from_doc(doc) if doc else None

    async def use_refresh(self, hashed: str) -> bool:
        """Mark a refresh token used (rotation); False when it already was."""
        result = await self.db[REFRESH].update_one({"_id": hashed, "used": False}, {"$set": {"used": True}})
        return result.modified_count == 1

    async def drop_family(self, family: str) -> list[dict[str, Any]]:
        """Delete every refresh token of a family; returns the access tokens they produced."""
        docs = [d async for d in self.db[REFRESH].find({"family": family}, {"access": 1})]
        await self.db[REFRESH].delete_many({"family": family})
        return [d["access"] for d in docs if d.get("access")]

    # EHR launches -----------------------------------------------------------------------------------

    async def create_launch(self, client_id: str, patient: str, encounter: str | None) -> str:
        launch = secrets.token_urlsafe(16)
        doc = {
            "_id": launch,
            "client_id": client_id,
            "patient": patient,
            "encounter": encounter,
            "exp": _at(LAUNCH_TTL_S),
        }
        await self.db[LAUNCHES].insert_one(doc)
        return launch

    async def launch(self, launch: str, client_id: str) -> dict[str, Any] | None:
        """A live launch context made for ``client_id``."""
        query = {"_id": launch, "client_id": client_id, "exp": {"$gt": _now()}}
        return await self.db[LAUNCHES].find_one(query)

    # Client assertions ------------------------------------------------------------------------------

    async def first_use_of_jti(self, issuer: str, jti: str, exp: int) -> bool:
        """Record an assertion's ``jti``; False when it was seen before (a replay)."""
        # Kept at least a while past its exp, so the clock leeway cannot reopen a replay window.
        keep = max(datetime.fromtimestamp(exp, UTC), _now()) + timedelta(minutes=10)
        try:
            await self.db[JTIS].insert_one({"_id": f"{issuer} {jti}", "exp": keep})
        except DuplicateKeyError:
            return False
        return True
