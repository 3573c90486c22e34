"""SMART Backend Services: client_credentials with a ``private_key_jwt`` assertion signed RS384 or
ES384, keys registered inline or fetched from the client's ``jwks_uri``; replays, long-lived assertions,
wrong audiences and unaccepted algorithms are refused."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from fhir_server.auth.setup import Auth
from tests.auth.server.conftest import TOKEN_URL, Flow, new_patient
from tests.conftest import BASE

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def rsa_key(alg: str | None = "RS384") -> RSAKey:
    params = {"kid": secrets.token_hex(4), **({"alg": alg} if alg else {})}
    return RSAKey.generate_key(2048, parameters=params)


def ec_key() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": secrets.token_hex(4), "alg": "ES384"})


def public_jwks(key: RSAKey | ECKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False)]}


def assertion(client_id: str, key: RSAKey | ECKey, alg: str, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": secrets.token_hex(8),
    }
    body.update(claims)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, body, key, algorithms=[alg])


async def ask(http: httpx.AsyncClient, signed: str, scope: str = "system/Patient.rs") -> httpx.Response:
    data = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    return await http.post("auth/token", data=data)


@pytest.fixture
def served_jwks(auth: Auth) -> Iterator[dict[str, dict[str, Any]]]:
    """JWK Sets the server can fetch over HTTP: {url: jwks}; also counts fetches under ``hits``."""
    documents: dict[str, dict[str, Any]] = {}
    hits: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        hits[url] = hits.get(url, 0) + 1
        if url not in documents:
            return httpx.Response(404)
        return httpx.Response(200, json=documents[url])

    remote = auth.server.remote_keys
    remote.transport = httpx.MockTransport(handler)
    documents["hits"] = hits  # type: ignore[assignment]
    yield documents
    remote.transport = None


async def test_rs384_with_registered_keys(
    flow: Flow, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    key = rsa_key()
    app = await flow.client(
        "asymmetric", scope="system/Patient.rs system/Observation.rs", jwks=public_jwks(key), role="research"
    )
    r = await ask(http, assertion(app, key, "RS384"), "system/Patient.rs system/*.cruds patient/*.rs openid")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert "refresh_token" not in body and "patient" not in body
    # Only system/ scopes, only what the client is registered for.
    assert set(body["scope"].split()) == {"system/Patient.rs", "system/Observation.rs"}
    keys = KeySet.import_key_set((await http.get("auth/jwks")).json())
    claims = jwt.decode(body["access_token"], keys, algorithms=["ES256"]).claims
    assert claims["sub"] == claims["client_id"] == app
    assert claims["role"] == "research" and claims["aud"] == BASE
    pid = await new_patient(client)
    read = await http.get(f"Patient/{pid}", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert read.status_code == 200, read.text


async def test_es384_with_jwks_uri(
    flow: Flow, http: httpx.AsyncClient, served_jwks: dict[str, dict[str, Any]]
) -> None:
    key = ec_key()
    url = f"https://backend.example/{secrets.token_hex(4)}/jwks.json"
    served_jwks[url] = public_jwks(key)
    app = await flow.client("asymmetric", scope="system/*.rs", jwks_uri=url, redirect_uris=[])
    r = await ask(http, assertion(app, key, "ES384"), "system/*.rs")
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "system/*.rs"
    assert (await ask(http, assertion(app, key, "ES384"), "system/*.rs")).status_code == 200
    assert served_jwks["hits"][url] == 1  # type: ignore[index]
    # A key the client did not publish is refused.
    stranger = ec_key()
    forged = await ask(
        http, jwt.encode({"alg": "ES384", "kid": key.kid}, _claims(app), stranger, algorithms=["ES384"])
    )
    assert forged.status_code in (400, 401) and forged.json()["error"] == "invalid_client"


def _claims(client_id: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 120,
        "jti": secrets.token_hex(8),
    }


async def test_replayed_assertion_is_refused(flow: Flow, http: httpx.AsyncClient) -> None:
    key = ec_key()
    app = await flow.client("asymmetric", scope="system/*.rs", jwks=public_jwks(key), redirect_uris=[])
    signed = assertion(app, key, "ES384")
    assert (await ask(http, signed, "system/*.rs")).status_code == 200
    replay = await ask(http, signed, "system/*.rs")
    assert replay.status_code in (400, 401)
    assert replay.json()["error"] == "invalid_client"
    assert "access_token" not in replay.json()


async def test_assertion_lifetime_audience_and_algorithm(flow: Flow, http: httpx.AsyncClient) -> None:
    # A key registered without "alg", so that only the server's algorithm list can refuse RS256.
    key = rsa_key(alg=None)
    app = await flow.client("asymmetric", scope="system/*.rs", jwks=public_jwks(key), redirect_uris=[])
    now = int(time.time())
    refused = [
        assertion(app, key, "RS384", exp=now + 600),  # more than five minutes ahead
        assertion(app, key, "RS384", exp=now - 120),  # expired
        assertion(app, key, "RS384", aud=f"{BASE}/auth/introspect"),
        assertion(app, key, "RS384", aud="https://other.example/token"),
        assertion(app, key, "RS256"),  # not an algorithm SMART allows here
        assertion(app, key, "RS384", iss="someone-else"),
        assertion(app, key, "RS384", jti=None),
    ]
    for signed in refused:
        r = await ask(http, signed, "system/*.rs")
        assert r.status_code in (400, 401), r.text
        assert r.json()["error"] == "invalid_client"
    assert (await ask(http, assertion(app, key, "RS384", exp=now + 290), "system/*.rs")).status_code == 200


async def test_backend_client_gets_no_user_scopes(flow: Flow, http: httpx.AsyncClient) -> None:
    key = ec_key()
    app = await flow.client(
        "asymmetric", scope="patient/*.rs user/*.rs", jwks=public_jwks(key), redirect_uris=[]
    )
    r = await ask(http, assertion(app, key, "ES384"), "patient/*.rs user/*.rs")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"


async def test_symmetric_client_cannot_use_client_credentials(flow: Flow, http: httpx.AsyncClient) -> None:
    from tests.auth.server.conftest import SECRET, basic

    app = await flow.client(scope="system/*.rs")
    r = await http.post(
        "auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.rs"},
        headers=basic(app, SECRET),
    )
    assert r.status_code in (400, 401)
    assert r.json()["error"] in ("invalid_client", "unauthorized_client")
