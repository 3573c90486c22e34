"""Access tokens: signed JWTs (RFC 9068 shape) that the FHIR endpoints check without a database read.

Claims: ``iss``, ``aud`` (the FHIR base URL), ``sub``, ``client_id``, ``scope``, ``iat``, ``exp``, ``jti``,
and where they apply ``patient`` (launch context), ``fhirUser``, ``role`` and the professional claims
(``rpps``, ``profession``, ``specialty``). Revoked tokens are listed by ``jti`` in MongoDB until they
expire; each process keeps that list in memory and refreshes it at most once a second.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.auth.keys import ALGORITHM, SigningKeys

REVOKED = "auth_revoked"
_REFRESH_REVOKED_S = 1.0
# Verified tokens remembered per process (see Tokens.verify).
_VERIFIED_MAX = 10_000
# Clock skew tolerated between this server and others (exp, iat, nbf).
LEEWAY_S = 30


class InvalidToken(Exception):
    """The bearer token cannot be used; the message says why (sent in ``WWW-Authenticate``)."""


class RevocationList:
    """The ``jti`` of revoked access tokens that have not expired yet."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._coll = db[REVOKED]
        self._jtis: set[str] = set()
        self._read_at = 0.0

    async def revoke(self, jti: str, exp: int) -> None:
        """List ``jti`` until ``exp`` (the periodic purge removes it afterwards)."""
        expires = datetime.fromtimestamp(exp, UTC)
        await self._coll.update_one({"_id": jti}, {"$set": {"exp": expires}}, upsert=True)
        self._jtis.add(jti)

    async def is_revoked(self, jti: str) -> bool:
        now = time.monotonic()
        if now - self._read_at > _REFRESH_REVOKED_S:
            self._read_at = now
            live = self._coll.find({"exp": {"$gt": datetime.now(UTC)}}, {"_id": 1})
            self._jtis = {d["_id"] async for d in live}
        return jti in self._jtis


class Tokens:
    """Signs access tokens and checks the bearer tokens of FHIR requests."""

    def __init__(self, keys: SigningKeys, revoked: RevocationList, issuer: str, audience: str) -> None:
        self.keys = keys
        self.revoked = revoked
        self.issuer = issuer
        self.audience = audience
        # Verified token text -> its claims (insertion order: the oldest is evicted first).
        self._verified: dict[str, dict[str, Any]] = {}

    async def issue(self, claims: dict[str, Any], lifetime: int) -> tuple[str, dict[str, Any]]:
        """A signed access token carrying ``claims`` (plus the registered ones); returns it and its claims."""
        await self.keys.refresh()
        now = int(time.time())
        body = {
            **{k: v for k, v in claims.items() if v is not None},
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        key = self.keys.current
        header = {"alg": ALGORITHM, "typ": "at+jwt", "kid": key.kid}
        return jwt.encode(header, body, key, algorithms=[ALGORITHM]), body

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unexpired, unrevoked access token of this server for this audience.

        An app sends the same token many times: a token whose signature and claims were checked is
        remembered (by its exact text) until it expires, so the next uses cost a dictionary lookup;
        expiry and revocation are still checked on every use."""
        claims = self._verified.get(token)
        if claims is None or claims["exp"] + LEEWAY_S <= time.time():
            claims = await self._check(token)
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.pop(next(iter(self._verified)))
            self._verified[token] = claims
        if await self.revoked.is_revoked(str(claims["jti"])):
            raise InvalidToken("token was revoked")
        return claims

    async def _check(self, token: str) -> dict[str, Any]:
        """Signature, algorithm, key and registered claims of ``token`` (no cache, no revocation)."""
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"token algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id")
        if not self.keys.has(kid):
            await self.keys.load()
            if not self.keys.has(kid):
                raise InvalidToken("token signed with an unknown key")
        try:
            decoded = jwt.decode(token, self.keys.key_set, algorithms=[ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise InvalidToken("token signature is not valid") from exc
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidToken(f"token rejected: {exc.error}") from exc
        if not isinstance(claims.get("scope", ""), str) or not isinstance(claims.get("exp"), int):
            raise InvalidToken("token scope or exp is malformed")
        return claims
