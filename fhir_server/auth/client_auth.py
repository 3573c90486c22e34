"""``private_key_jwt`` client authentication (RFC 7523, as SMART Backend Services profiles it).

Authlib's ``JWTBearerClientAssertion`` does the work; this subclass adds what SMART asks for and what
Authlib leaves open: only RS384 and ES384 signatures (joserfc does not accept RS384 unless named),
``aud`` = our token endpoint, ``exp`` at most five minutes ahead, a ``jti`` used once (kept in MongoDB
past its ``exp``), and the client's public keys from its registered JWK Set or from its ``jwks_uri``
(fetched with httpx, kept a minute).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhir_server.auth.accounts import Client
from fhir_server.auth.smart import ASSERTION_ALGORITHMS
from fhir_server.auth.store import Store
from fhir_server.auth.tokens import LEEWAY_S

T = TypeVar("T")
RunSync = Callable[[Coroutine[Any, Any, T]], T]

# SMART Backend Services: an assertion expires no more than five minutes after it is made.
MAX_ASSERTION_LIFETIME_S = 300
_JWKS_CACHE_S = 60.0
_JWKS_MAX_BYTES = 64 * 1024


class RemoteKeySets:
    """Clients' JWK Sets fetched from their ``jwks_uri``, kept briefly."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport
        self._cache: dict[str, tuple[float, KeySet]] = {}

    async def get(self, uri: str) -> KeySet:
        """The key set at ``uri`` (from the cache when fetched less than a minute ago)."""
        hit = self._cache.get(uri)
        if hit and time.monotonic() - hit[0] < _JWKS_CACHE_S:
            return hit[1]
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=5.0) as http:
                resp = await http.get(uri, headers={"Accept": "application/json"})
            if resp.status_code != 200 or len(resp.content) > _JWKS_MAX_BYTES:
                raise ValueError(f"status {resp.status_code}")
            keys = KeySet.import_key_set(resp.json())
        except (httpx.HTTPError, ValueError, JoseError, TypeError) as exc:
            raise InvalidClientError(description="The client's jwks_uri could not be read.") from exc
        self._cache[uri] = (time.monotonic(), keys)
        return keys


class PrivateKeyJWT(JWTBearerClientAssertion):
    """Authenticates a client by a JWT it signed with its private key."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, token_url: str, store: Store, remote: RemoteKeySets, run_sync: RunSync[Any]) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY_S)
        self._token_url = token_url
        self._store = store
        self._remote = remote
        self._run_sync = run_sync

    def get_audiences(self) -> list[str]:
        return [self._token_url]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        # Authlib decodes with joserfc's default algorithm list, which leaves RS384 out: name ours.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="The client assertion signature is not valid.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: dict[str, Any]) -> None:
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp > time.time() + MAX_ASSERTION_LIFETIME_S + LEEWAY_S:
            raise InvalidClientError(description="The client assertion must expire within 5 minutes.")
        super().verify_claims(claims)

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not jti:
            return False
        return bool(self._run_sync(self._store.first_use_of_jti(str(claims["iss"]), jti, int(claims["exp"]))))

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if client.jwks:
            return KeySet.import_key_set(client.jwks)
        if client.jwks_uri:
            keys: KeySet = self._run_sync(self._remote.get(client.jwks_uri))
            return keys
        raise InvalidClientError(description="The client has no registered keys.")
