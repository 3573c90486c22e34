"""Where the authorization server's endpoints are, and the discovery documents that say so.

``smart_endpoints`` is the one place the URLs are built: the SMART configuration, the OpenID
configuration and the CapabilityStatement's security extension all read it.
"""

from __future__ import annotations

from typing import Any

# What this server does, as SMART capability names; each one is exercised by tests/auth/server.
CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "permission-offline",
    "permission-online",
    "sso-openid-connect",
    "authorize-post",
]

# The scopes a client may ask for beyond clinical ones (which are listed by pattern).
NON_CLINICAL_SCOPES = [
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
]

SCOPES_SUPPORTED = [
    *NON_CLINICAL_SCOPES,
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "patient/*.read",
    "user/*.read",
    "system/*.read",
]

GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials"]
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
# Algorithms accepted on private_key_jwt client assertions (SMART Backend Services).
ASSERTION_ALGORITHMS = ["RS384", "ES384"]


def smart_endpoints(base: str) -> dict[str, str]:
    """The OAuth URLs for the FHIR base URL ``base`` (no trailing slash): authorize, token, introspect,
    revoke and jwks (no dynamic registration or management endpoint)."""
    auth = f"{base}/auth"
    return {
        "authorize": f"{auth}/authorize",
        "token": f"{auth}/token",
        "introspect": f"{auth}/introspect",
        "revoke": f"{auth}/revoke",
        "jwks": f"{auth}/jwks",
    }


def server_urls(base: str) -> dict[str, str]:
    """The OAuth URLs plus this server's own ones: userinfo, EHR launch, SMART style, login pages."""
    auth = f"{base}/auth"
    return {
        **smart_endpoints(base),
        "userinfo": f"{auth}/userinfo",
        "launch": f"{auth}/launch",
        "style": f"{auth}/smart-style.json",
        "login": f"{auth}/login",
        "approve": f"{auth}/approve",
        "upstream_login": f"{auth}/upstream/login",
        "upstream_callback": f"{auth}/upstream/callback",
    }


def smart_configuration(base: str, issuer: str) -> dict[str, Any]:
    """The document served at ``{base}/.well-known/smart-configuration``."""
    urls = server_urls(base)
    return {
        "issuer": issuer,
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
        "userinfo_endpoint": urls["userinfo"],
        "grant_types_supported": GRANT_TYPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": CAPABILITIES,
    }


def openid_configuration(base: str, issuer: str, id_token_alg: str) -> dict[str, Any]:
    """The OpenID Provider metadata served at ``{issuer}/.well-known/openid-configuration``."""
    urls = server_urls(base)
    return {
        "issuer": issuer,
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "userinfo_endpoint": urls["userinfo"],
        "jwks_uri": urls["jwks"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
        "response_types_supported": ["code"],
        "grant_types_supported": GRANT_TYPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [id_token_alg],
        "scopes_supported": SCOPES_SUPPORTED,
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser", "name"],
    }
