"""Discovery: the SMART configuration, the OpenID configuration (at the issuer and at the host root),
the server's public keys and the SMART style document, all public."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from fhir_server.auth.smart import smart_endpoints
from tests.conftest import BASE


async def test_smart_configuration(anonymous: httpx.AsyncClient) -> None:
    r = await anonymous.get(".well-known/smart-configuration")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["issuer"] == BASE
    assert doc["jwks_uri"] == f"{BASE}/auth/jwks"
    assert doc["authorization_endpoint"] == f"{BASE}/auth/authorize"
    assert doc["token_endpoint"] == f"{BASE}/auth/token"
    assert doc["introspection_endpoint"] == f"{BASE}/auth/introspect"
    assert doc["revocation_endpoint"] == f"{BASE}/auth/revoke"
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    }
    assert set(doc["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    for scope in ("openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access"):
        assert scope in doc["scopes_supported"]
    assert set(doc["capabilities"]) == {
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
        "permission-offline",
        "permission-online",
        "sso-openid-connect",
        "context-banner",
        "context-style",
        "authorize-post",
    }


def test_endpoint_urls_in_one_place() -> None:
    assert smart_endpoints("https://dmp.example/fhir") == {
        "authorize": "https://dmp.example/fhir/auth/authorize",
        "token": "https://dmp.example/fhir/auth/token",
        "introspect": "https://dmp.example/fhir/auth/introspect",
        "revoke": "https://dmp.example/fhir/auth/revoke",
        "jwks": "https://dmp.example/fhir/auth/jwks",
    }


async def test_openid_configuration_at_issuer_and_root(app: FastAPI, anonymous: httpx.AsyncClient) -> None:
    at_issuer = await anonymous.get(".well-known/openid-configuration")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as root:
        at_root = await root.get("/.well-known/openid-configuration")
    assert at_issuer.status_code == at_root.status_code == 200
    assert at_issuer.json() == at_root.json()
    doc = at_issuer.json()
    assert doc["issuer"] == BASE
    assert doc["jwks_uri"] == f"{BASE}/auth/jwks"
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert doc["userinfo_endpoint"] == f"{BASE}/auth/userinfo"


async def test_jwks_has_public_keys_only(anonymous: httpx.AsyncClient) -> None:
    r = await anonymous.get("auth/jwks")
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert keys and all(k["kty"] == "EC" and "d" not in k and k["kid"] for k in keys)


async def test_smart_style(anonymous: httpx.AsyncClient) -> None:
    r = await anonymous.get("auth/smart-style.json")
    assert r.status_code == 200
    assert r.json()["color_highlight"].startswith("#")
