"""Authlib grants and endpoints, specialised for SMART on FHIR.

Each class fills in the storage hooks Authlib leaves open; the hooks run in a worker thread (see
:mod:`fhir_server.auth.server`) and reach MongoDB through ``server.run_sync``. What is ours:

- authorization code: PKCE with S256 is required at the authorization endpoint (``plain`` or none is an
  error redirect), ``aud`` must be our FHIR base URL, an EHR ``launch`` must be one this client created;
  a code is claimed atomically at its first use and a second use revokes what the first one produced;
- refresh token: rotation (each use returns a new refresh token, the old one is spent), and the reuse of
  a spent refresh token revokes its whole family; ``online_access`` tokens die with the login session;
- client credentials: ``private_key_jwt`` clients only (SMART Backend Services), ``system/`` scopes only;
- OpenID Connect: an ``id_token`` signed with the server key when ``openid`` was granted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode
from joserfc.jwk import ECKey

from fhir_server.auth.accounts import Client, User
from fhir_server.auth.keys import ALGORITHM
from fhir_server.auth.scope_match import USER_CONTEXTS, allowed_scopes
from fhir_server.auth.store import AuthCode, LaunchContext, RefreshRecord

if TYPE_CHECKING:
    from fhir_server.auth.server import FoundToken, SmartServer

ALL_CLIENT_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
_LOGIN_SCOPES = {"openid", "fhirUser", "profile"}
CONFIDENTIAL_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


@dataclass(frozen=True)
class Approval:
    """What the user decided on the approval page: who they are and the patient in context."""

    user: User
    context: LaunchContext
    session: str | None
    auth_time: int


def _server(grant: Any) -> SmartServer:
    server: SmartServer = grant.server
    return server


class _Issuing:
    """Token generation shared by the grants: the server signs and records the tokens."""

    request: Any
    server: Any
    GRANT_TYPE: str | None

    def generate_token(
        self,
        user: Any = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        return _server(self).issue(self.request, self.GRANT_TYPE or "", user, scope or "")


class AuthorizationCodeGrant(_Issuing, grants.AuthorizationCodeGrant):
    """The SMART app launch (EHR and standalone) with PKCE S256."""

    TOKEN_ENDPOINT_AUTH_METHODS = ALL_CLIENT_METHODS

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        data = self.request.payload.data
        server = _server(self)

        def fail(message: str) -> InvalidRequestError:
            return InvalidRequestError(message, redirect_uri=redirect_uri, state=self.request.payload.state)

        if not data.get("code_challenge"):
            raise fail("PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            raise fail("Only code_challenge_method=S256 is accepted.")
        aud = data.get("aud")
        # A login-only request (OpenID Connect, no FHIR access: how a federated server signs its users
        # in here) may omit aud; any request that names an audience must name this server.
        login_only = set((self.request.payload.scope or "").split()) <= _LOGIN_SCOPES
        if (aud is not None or not login_only) and (aud or "").rstrip("/") != server.settings.fhir_base:
            raise fail("The aud parameter must be this server's FHIR base URL.")
        launch = data.get("launch")
        self.request.launch_context = None
        if launch:
            found = server.run_sync(server.store.launch(launch, self.request.client.client_id))
            if found is None:
                raise fail("Unknown or expired launch.")
            self.request.launch_context = LaunchContext(found["patient"], found.get("encounter"))
        return redirect_uri

    def save_authorization_code(self, code: str, request: Any) -> None:
        approval: Approval = request.user
        # The client's scopes were applied by Authlib; the user's role narrows them further.
        scope = " ".join(allowed_scopes(request.scope, request.scope, USER_CONTEXTS[approval.user.role]))
        data = request.payload.data
        fields = {
            "client_id": request.client.client_id,
            "redirect_uri": request.payload.redirect_uri or request.client.get_default_redirect_uri(),
            "scope": scope,
            "user_id": approval.user.id,
            "context": approval.context.as_doc(),
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "nonce": data.get("nonce"),
            "auth_time": approval.auth_time,
            "session": approval.session,
        }
        _server(self).run_sync(_server(self).store.save_code(code, fields))

    def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
        server = _server(self)
        found = server.run_sync(server.store.claim_code(code, client.client_id))
        if isinstance(found, dict):
            # RFC 6749 §4.1.2: a code used twice revokes the tokens issued on its first use.
            if found.get("issued"):
                server.run_sync(server.revoke_issued(found["issued"]))
            return None
        return found

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        # Nothing to do: the code was marked used when claimed, and is kept to recognise a reuse.
        return None

    def authenticate_user(self, authorization_code: AuthCode) -> User | None:
        server = _server(self)
        user = server.run_sync(server.users.get(authorization_code.user_id))
        return user if user and not user.disabled else None


class RefreshTokenGrant(_Issuing, grants.RefreshTokenGrant):
    """Refresh with rotation; a spent refresh token presented again revokes its family."""

    TOKEN_ENDPOINT_AUTH_METHODS = ALL_CLIENT_METHODS

    def validate_token_request(self) -> None:
        server = _server(self)
        client = self._validate_request_client()
        self.request.client = client
        presented = self.request.form.get("refresh_token")
        if not presented:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        record: RefreshRecord | None = server.run_sync(server.store.refresh(presented))
        if record is None or not record.check_client(client):
            raise InvalidGrantError("The refresh token is not valid.")
        if record.used:
            server.run_sync(server.revoke_family(record.family))
            raise InvalidGrantError("The refresh token was already used.")
        self._validate_token_scope(record)
        if record.session and not server.run_sync(server.store.session_alive(record.session)):
            raise InvalidGrantError("The login session of this online_access token has ended.")
        user = server.run_sync(server.users.get(record.user_id))
        if user is None or user.disabled:
            raise InvalidGrantError("The user of this refresh token can no longer sign in.")
        if not server.run_sync(server.store.use_refresh(record.hashed)):
            server.run_sync(server.revoke_family(record.family))
            raise InvalidGrantError("The refresh token was already used.")
        self.request.refresh_token = record
        self.request.user = user

    def authenticate_user(self, refresh_token: RefreshRecord) -> User:
        user: User = self.request.user
        return user

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        # Already spent in validate_token_request, atomically, before anything was issued.
        return None


class ClientCredentialsGrant(_Issuing, grants.ClientCredentialsGrant):
    """SMART Backend Services: a client authenticated by a signed assertion, ``system/`` scopes."""

    TOKEN_ENDPOINT_AUTH_METHODS = ("private_key_jwt",)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        if not self.request.payload.scope:
            raise InvalidScopeError("A scope is required.")


class SmartOpenIDCode(OpenIDCode):
    """The id_token of the code flow: server key, ``aud`` = client id, ``fhirUser`` when granted."""

    def __init__(self, server: SmartServer) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        client_id = request.payload.client_id or ""
        return bool(self.server.run_sync(self.server.store.nonce_seen(client_id, nonce)))

    def resolve_client_private_key(self, client: Client) -> ECKey:
        return self.server.tokens.keys.current

    def get_client_algorithm(self, client: Client) -> str:
        return ALGORITHM

    def get_encode_header(self, client: Client) -> dict[str, Any]:
        return {"alg": ALGORITHM, "typ": "JWT", "kid": self.server.tokens.keys.current.kid}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {"iss": self.server.settings.token_issuer, "aud": client.client_id}

    def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
        words = scope.split()
        info: dict[str, Any] = {"sub": user.id}
        if "fhirUser" in words and user.fhir_user:
            info["fhirUser"] = user.fhir_user
        if "profile" in words:
            info["preferred_username"] = user.username
            if user.fhir_user:
                info["fhirUser"] = user.fhir_user
        return info


class SmartIntrospection(IntrospectionEndpoint):
    """RFC 7662 for confidential clients, about the tokens issued to themselves."""

    CLIENT_AUTH_METHODS = CONFIDENTIAL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        server: SmartServer = self.server
        found: FoundToken | None = server.run_sync(server.find_token(token_string))
        return found

    def check_permission(self, token: FoundToken, client: Client, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        return token.introspection()


class SmartRevocation(RevocationEndpoint):
    """RFC 7009: access tokens go to the revocation list, refresh tokens take their family along."""

    CLIENT_AUTH_METHODS = ALL_CLIENT_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        server: SmartServer = self.server
        found: FoundToken | None = server.run_sync(server.find_token(token_string))
        return found

    def revoke_token(self, token: FoundToken, request: Any) -> None:
        server: SmartServer = self.server
        server.run_sync(server.revoke(token))
