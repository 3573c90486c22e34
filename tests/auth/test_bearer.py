"""Bearer tokens at the FHIR endpoints: 401 for a missing or forged token, public discovery, and
``--insecure-no-auth`` for local experiments only."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from fhir_server.app import create_app
from fhir_server.config import Settings
from tests.conftest import BASE, bearer, patient


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": BASE,
        "aud": BASE,
        "sub": "attacker",
        "scope": "system/*.*",
        "iat": now,
        "exp": now + 600,
        "jti": f"j{now}",
        **extra,
    }


def _sign(app: FastAPI, claims: dict[str, Any], kid: str | None = None) -> str:
    key: ECKey = app.state.auth.keys.current
    header = {"alg": "ES256", "kid": kid or key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key, algorithms=["ES256"])


async def _status(app: FastAPI, token: str | None, path: str = "Patient") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE + "/") as c:
        return await c.get(path, headers=headers)


def _is_401(r: httpx.Response, error: str | None = "invalid_token") -> None:
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{BASE}"' in challenge
    if error:
        assert f'error="{error}"' in challenge
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_missing_token_is_401_with_a_challenge(app: FastAPI) -> None:
    r = await _status(app, None)
    _is_401(r, error=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE + "/") as c:
        basic = await c.get("Patient", headers={"Authorization": "Basic dXNlcjpwdw=="})
    _is_401(basic, error="invalid_request")


async def test_metadata_and_discovery_are_public(app: FastAPI) -> None:
    assert (await _status(app, None, "metadata")).status_code == 200
    jwks = await _status(app, None, "auth/jwks")
    assert jwks.status_code == 200
    assert all("d" not in k for k in jwks.json()["keys"]), "a private key part is published"


async def test_a_valid_token_works(app: FastAPI) -> None:
    assert (await _status(app, _sign(app, _claims()))).status_code == 200


@pytest.mark.parametrize(
    "forge",
    [
        "alg-none",
        "hs256-with-public-key",
        "expired",
        "other-audience",
        "other-issuer",
        "tampered-payload",
        "unknown-key",
        "foreign-key",
        "no-jti",
        "garbage",
    ],
)
async def test_forged_or_unfit_tokens_are_refused(app: FastAPI, forge: str) -> None:
    key: ECKey = app.state.auth.keys.current
    if forge == "alg-none":
        token = f"{_b64(orjson.dumps({'alg': 'none', 'typ': 'JWT'}))}.{_b64(orjson.dumps(_claims()))}."
    elif forge == "hs256-with-public-key":
        secret = OctKey.import_key(orjson.dumps(key.as_dict(private=False)))
        token = jwt.encode({"alg": "HS256", "kid": key.kid}, _claims(), secret, algorithms=["HS256"])
    elif forge == "expired":
        token = _sign(app, _claims(exp=int(time.time()) - 120, iat=int(time.time()) - 4000))
    elif forge == "other-audience":
        token = _sign(app, _claims(aud="https://elsewhere.example/fhir"))
    elif forge == "other-issuer":
        token = _sign(app, _claims(iss="https://elsewhere.example"))
    elif forge == "tampered-payload":
        header, _, signature = _sign(app, _claims(scope="patient/Patient.rs", patient="x")).split(".")
        token = f"{header}.{_b64(orjson.dumps(_claims()))}.{signature}"
    elif forge == "unknown-key":
        token = _sign(app, _claims(), kid="not-a-key-of-ours")
    elif forge == "foreign-key":
        other = ECKey.generate_key("P-256", parameters={"kid": key.kid})
        token = jwt.encode({"alg": "ES256", "kid": key.kid}, _claims(), other, algorithms=["ES256"])
    elif forge == "no-jti":
        claims = _claims()
        del claims["jti"]
        token = _sign(app, claims)
    else:
        token = "not.a.jwt"
    r = await _status(app, token)
    _is_401(r)
    assert "entry" not in r.text


async def test_revoked_access_token_is_refused(app: FastAPI) -> None:
    claims = _claims(jti=f"revoke-me-{time.time_ns()}")
    token = _sign(app, claims)
    assert (await _status(app, token)).status_code == 200
    await app.state.auth.tokens.revoked.revoke(claims["jti"], claims["exp"])
    _is_401(await _status(app, token))


@pytest.fixture
async def insecure(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(dataclasses.replace(settings, auth=False))
    async with application.router.lifespan_context(application):
        yield application


async def test_insecure_mode_needs_no_token(insecure: FastAPI, app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=insecure), base_url=BASE + "/") as c:
        r = await c.post("Patient", json=patient(), headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 201
    # The secure app still refuses the same request.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE + "/") as c:
        assert (await c.get(f"Patient/{r.json()['id']}")).status_code == 401
        ok = await c.get(f"Patient/{r.json()['id']}", headers=await bearer(app, "system/Patient.rs"))
        assert ok.status_code == 200


async def test_insecure_mode_logs_a_warning_on_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    application = create_app(dataclasses.replace(settings, auth=False))
    with caplog.at_level("WARNING", logger="fhir_server"):
        async with application.router.lifespan_context(application):
            pass
    assert any("insecure-no-auth" in r.getMessage() for r in caplog.records)
