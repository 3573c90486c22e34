"""The OAuth 2 / OpenID Connect authorization server: Authlib's ``AuthorizationServer`` on our stores.

Authlib is synchronous and our storage is async PyMongo. Each Authlib call runs in a worker thread of a
small pool of its own (``call``); its storage hooks (find the client, claim a code, sign a token…) hand
coroutines back to the event loop with ``run_sync`` and wait for them. The request is read completely
(body parsed) on the loop before the thread starts, so Authlib never touches the ASGI stream. The pool
is separate from asyncio's default executor so that a burst of token requests cannot take every thread
the loop itself needs while they wait on it.

The HTTP layer (``fhir_server.api.auth_routes``) turns the ``(status, body, headers)`` Authlib returns
into a response; OAuth errors stay OAuth JSON errors.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import InvalidScopeError, OAuth2Payload
from authlib.oauth2.rfc7636 import CodeChallenge
from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.auth.accounts import Client, Clients, User, Users
from fhir_server.auth.claims import client_claims, user_claims
from fhir_server.auth.client_auth import PrivateKeyJWT, RemoteKeySets
from fhir_server.auth.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
    SmartIntrospection,
    SmartOpenIDCode,
    SmartRevocation,
)
from fhir_server.auth.scope_match import BACKEND_CONTEXTS, allowed_scopes
from fhir_server.auth.smart import server_urls
from fhir_server.auth.store import SESSIONS, Issued, LaunchContext, RefreshRecord, Store
from fhir_server.auth.tokens import InvalidToken, Tokens
from fhir_server.config import Settings

# Authlib logs issued tokens (with their values) at DEBUG level; keep them out of any log.
logging.getLogger("authlib").setLevel(logging.INFO)

T = TypeVar("T")
Result = tuple[int, Any, list[tuple[str, str]]]

_REFRESH_SCOPES = ("offline_access", "online_access")


class FormPayload(OAuth2Payload):
    """Request parameters: the query string of a GET, the form body of a POST."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        lists: dict[str, list[str]] = {}
        for key, value in pairs:
            lists.setdefault(key, []).append(value)
        self._lists = lists
        self._first = {k: v[0] for k, v in lists.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._first

    @property
    def datalist(self) -> dict[str, list[str]]:  # type: ignore[override]
        return self._lists


class FormRequest(OAuth2Request):
    """An OAuth 2 request whose parameters were read before Authlib sees it."""

    def __init__(self, method: str, uri: str, headers: Any, pairs: list[tuple[str, str]]) -> None:
        # Authlib refuses plain-http URLs. TLS ends in front of this server (a proxy), which is the
        # deployment's concern, so the check is made on an https spelling of the same URL.
        super().__init__(method, "https://" + uri.split("://", 1)[-1], headers=headers)
        self.uri = uri
        self.payload = FormPayload(pairs)
        self.launch_context: LaunchContext | None = None

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data if self.method == "GET" else {}

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data if self.method != "GET" else {}


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The pairs of an ``application/x-www-form-urlencoded`` body (undecodable → none)."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return []


@dataclass
class FoundToken:
    """An access or refresh token of this server, as introspection and revocation see it."""

    kind: str
    client_id: str
    active: bool
    claims: dict[str, Any] = field(default_factory=dict)
    refresh: RefreshRecord | None = None

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return not self.active

    def introspection(self) -> dict[str, Any]:
        if self.kind == "access_token":
            return {"active": True, "token_type": "Bearer", **self.claims}
        return {"active": True, "token_type": "refresh_token", **self.claims}


class SmartServer(AuthorizationServer):
    """Grants, endpoints and storage hooks; see the module docstring for the threading model."""

    def __init__(
        self,
        settings: Settings,
        db: AsyncDatabase[dict[str, Any]],
        tokens: Tokens,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(scopes_supported=None)
        self.settings = settings
        self.db = db
        self.tokens = tokens
        self.users = Users(db)
        self.clients = Clients(db)
        self.store = Store(db)
        self.urls = server_urls(settings.fhir_base)
        self.remote_keys = RemoteKeySets()
        self._loop = loop
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="authlib")
        self.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True), SmartOpenIDCode(self)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(SmartIntrospection)
        self.register_endpoint(SmartRevocation)
        assertion = PrivateKeyJWT(self.urls["token"], self.store, self.remote_keys, self.run_sync)
        self.register_client_auth_method("private_key_jwt", assertion)

    # Threading ------------------------------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a synchronous Authlib call in the pool, from the event loop."""
        return await self._loop.run_in_executor(self._pool, fn, *args)

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """From a pool thread: run ``coro`` on the event loop and wait for its result."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError("run_sync called on the event loop thread; it would wait for itself")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # Authlib hooks --------------------------------------------------------------------------------

    def query_client(self, client_id: Any) -> Client | None:
        if not isinstance(client_id, str) or not client_id:
            return None
        return self.run_sync(self.clients.get(client_id))

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        # Tokens are recorded as they are made, in ``issue``.
        return None

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if not isinstance(request, OAuth2Request):
            raise TypeError("build a FormRequest on the event loop first")
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Result:
        return status, body, list(headers or [])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        # No signal listeners here; Authlib calls this after client authentication and revocation.
        return None

    # Issuing --------------------------------------------------------------------------------------

    def issue(self, request: Any, grant_type: str, user: User | None, scope: str) -> dict[str, Any]:
        """Sign an access token (and a refresh token when the scopes allow) for a grant; worker side."""
        return self.run_sync(self._issue(request, grant_type, user, scope))

    async def _issue(self, request: Any, grant_type: str, user: User | None, scope: str) -> dict[str, Any]:
        client: Client = request.client
        ttl = self.settings.access_token_ttl
        if grant_type == "client_credentials":
            granted = " ".join(allowed_scopes(scope, client.scope, BACKEND_CONTEXTS))
            if not granted:
                raise InvalidScopeError("None of the requested scopes is allowed for this client.")
            access, claims = await self.tokens.issue(client_claims(client, granted), ttl)
            return {"access_token": access, "token_type": "Bearer", "expires_in": ttl, "scope": granted}
        assert user is not None
        if grant_type == "authorization_code":
            code = request.authorization_code
            context, session, family, kept_scope = code.context, code.session, None, scope
        else:
            record: RefreshRecord = request.refresh_token
            context, session, family, kept_scope = record.context, record.session, record.family, record.scope
        access, claims = await self.tokens.issue(
            await user_claims(self.db, user, client, scope, context), ttl
        )
        issued = Issued(str(claims["jti"]), int(claims["exp"]), family)
        token: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scope,
        }
        if context.patient:
            token["patient"] = context.patient
        if context.encounter:
            token["encounter"] = context.encounter
        token["need_patient_banner"] = context.need_patient_banner
        token["smart_style_url"] = self.urls["style"]
        refresh = await self._refresh_token(client, user, kept_scope, context, session, family, issued)
        if refresh:
            token["refresh_token"], family = refresh
            issued = Issued(issued.jti, issued.exp, family)
        if grant_type == "authorization_code" and not await self.store.record_code_issue(code.hashed, issued):
            # The code was presented a second time while this response was being made.
            await self.revoke_issued({"jti": issued.jti, "exp": issued.exp, "family": issued.family})
        return token

    async def _refresh_token(
        self,
        client: Client,
        user: User,
        scope: str,
        context: LaunchContext,
        session: str | None,
        family: str | None,
        access: Issued,
    ) -> tuple[str, str] | None:
        """A new refresh token (and its family) when offline or online access was granted."""
        words = scope.split()
        if "offline_access" in words:
            lifetime, bound = self.settings.refresh_token_ttl, None
        elif "online_access" in words and session:
            found = await self.db[SESSIONS].find_one({"_id": session}, {"exp": 1})
            if found is None:
                return None
            remaining = int((found["exp"] - datetime.now(UTC)).total_seconds())
            lifetime, bound = min(remaining, self.settings.refresh_token_ttl), session
            if lifetime <= 0:
                return None
        else:
            return None
        refresh = secrets.token_urlsafe(32)
        family = family or secrets.token_urlsafe(12)
        fields = {
            "client_id": client.client_id,
            "user_id": user.id,
            "scope": scope,
            "context": context.as_doc(),
            "session": bound,
        }
        await self.store.save_refresh(refresh, family, fields, lifetime, access)
        return refresh, family

    # Revocation -----------------------------------------------------------------------------------

    async def revoke_issued(self, issued: dict[str, Any]) -> None:
        """Revoke the access token and refresh family one grant produced."""
        await self.tokens.revoked.revoke(issued["jti"], int(issued["exp"]))
        if issued.get("family"):
            await self.revoke_family(issued["family"])

    async def revoke_family(self, family: str) -> None:
        """Delete a refresh-token family and revoke the access tokens it produced."""
        for access in await self.store.drop_family(family):
            await self.tokens.revoked.revoke(access["jti"], int(access["exp"]))

    async def find_token(self, value: str) -> FoundToken | None:
        """The access or refresh token ``value`` is, when this server issued it."""
        if value.count(".") == 2:
            try:
                claims = await self.tokens.verify(value)
            except InvalidToken:
                return None
            return FoundToken("access_token", str(claims.get("client_id")), True, dict(claims))
        record = await self.store.refresh(value)
        if record is None:
            return None
        active = not record.used and (
            record.session is None or await self.store.session_alive(record.session)
        )
        claims = {
            "client_id": record.client_id,
            "sub": record.user_id,
            "scope": record.scope,
            "exp": int(record.exp.timestamp()),
            "iss": self.settings.token_issuer,
        }
        if record.context.patient:
            claims["patient"] = record.context.patient
        return FoundToken("refresh_token", record.client_id, active, claims, record)

    async def revoke(self, token: FoundToken) -> None:
        """Revoke an access token (by its jti) or a refresh token with its family."""
        if token.kind == "access_token":
            await self.tokens.revoked.revoke(str(token.claims["jti"]), int(token.claims["exp"]))
        elif token.refresh is not None:
            await self.revoke_family(token.refresh.family)
