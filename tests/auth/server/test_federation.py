"""Federation: a professional signs in at an upstream OpenID provider (here a second instance of this
server, standing in for Pro Santé Connect) and is matched to a local practitioner by RPPS.

Three hosts in one process: ``upstream`` (the provider), ``fed`` (the server under test, configured
with ``FHIR_UPSTREAM_*``) and the app's redirect URI; the browser is one httpx client whose transport
routes each host to its ASGI app, with one cookie jar for both sites."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from fhir_server.app import create_app
from fhir_server.auth.setup import Auth
from fhir_server.auth.upstream import parse_mapping, pick
from fhir_server.config import Settings
from tests.auth.server.conftest import (
    G15,
    PASSWORD,
    REDIRECT,
    RPPS_SYSTEM,
    SECRET,
    Flow,
    basic,
    hidden,
    new_rpps,
    query_of,
)
from tests.conftest import bearer

UPSTREAM = "http://upstream/fhir"
FED = "http://fed/fhir"


class Hosts(httpx.AsyncBaseTransport):
    """Routes each request to the ASGI app of its host."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self._transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transports[request.url.host].handle_async_request(request)


@dataclass
class Sites:
    upstream: FastAPI
    fed: FastAPI
    transport: Hosts
    fed_client_id: str


@pytest.fixture(scope="module")
async def sites(settings: Settings) -> AsyncIterator[Sites]:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    client_id = "dmp-federation"
    up_settings = dataclasses.replace(settings, base_url=UPSTREAM, mongo_db=f"up_{secrets.token_hex(4)}")
    fed_settings = dataclasses.replace(
        settings,
        base_url=FED,
        mongo_db=f"fed_{secrets.token_hex(4)}",
        upstream_issuer=UPSTREAM,
        upstream_name="Upstream Connect",
        upstream_client_id=client_id,
        upstream_client_secret=SECRET,
        upstream_scope="openid fhirUser",
        upstream_claims='{"rpps": "rpps", "profession": "profession"}',
    )
    upstream, fed = create_app(up_settings), create_app(fed_settings)
    async with upstream.router.lifespan_context(upstream), fed.router.lifespan_context(fed):
        up_auth: Auth = upstream.state.auth
        await up_auth.server.clients.add(
            client_id,
            "symmetric",
            "openid fhirUser profile",
            [f"{FED}/auth/upstream/callback"],
            cheap.hash(SECRET),
        )
        transport = Hosts({"upstream": upstream, "fed": fed})
        fed.state.auth.upstream.transport = transport
        yield Sites(upstream, fed, transport, client_id)


async def _practitioner(app: FastAPI, base: str, rpps: str) -> str:
    body = {
        "resourceType": "Practitioner",
        "identifier": [{"system": RPPS_SYSTEM, "value": rpps}],
        "qualification": [{"code": {"coding": [{"system": G15, "code": "60"}]}}],
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base + "/") as c:
        r = await c.post("Practitioner", json=body, headers=await bearer(app, "system/*.*", base))
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _action(html: str) -> str:
    found = re.search(r'<form method="post" action="([^"]+)"', html)
    assert found
    return unescape(found.group(1))


def _link(html: str) -> str:
    found = re.search(r'<a href="([^"]+)">Sign in with Upstream Connect</a>', html)
    assert found, html
    return unescape(found.group(1))


async def _upstream_login(browser: httpx.AsyncClient, start: str, username: str) -> httpx.Response:
    """From the fed login page: follow the provider link, sign in and approve there, come back."""
    to_upstream = await browser.get(_link(start))
    assert to_upstream.status_code == 302
    location = to_upstream.headers["location"]
    assert location.startswith(f"{UPSTREAM}/auth/authorize?")
    q = query_of(location)
    assert q["code_challenge_method"] == "S256" and q["nonce"] and q["state"]
    page = await browser.get(location)
    approval = page
    if 'name="password"' in page.text:  # not signed in at the provider yet
        form = {"rid": hidden(page.text, "rid"), "csrf": hidden(page.text, "csrf")}
        approval = await browser.post(
            _action(page.text), data={**form, "username": username, "password": PASSWORD}
        )
    form = {"rid": hidden(approval.text, "rid"), "csrf": hidden(approval.text, "csrf"), "decision": "approve"}
    back = await browser.post(_action(approval.text), data=form)
    assert back.status_code == 302, back.text
    assert back.headers["location"].startswith(f"{FED}/auth/upstream/callback?")
    return await browser.get(back.headers["location"])


async def _accounts(sites: Sites, rpps: str, local: bool = True) -> tuple[str, str | None, str]:
    """An upstream user with this RPPS, the local Practitioner (when ``local``), a local app."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    up_auth: Auth = sites.upstream.state.auth
    fed_auth: Auth = sites.fed.state.auth
    up_prac = await _practitioner(sites.upstream, UPSTREAM, rpps)
    username = f"pro-{secrets.token_hex(4)}"
    await up_auth.server.users.add(username, cheap.hash(PASSWORD), "practitioner", practitioner=up_prac)
    local_prac = await _practitioner(sites.fed, FED, rpps) if local else None
    app_id = f"app-{secrets.token_hex(4)}"
    await fed_auth.server.clients.add(
        app_id, "symmetric", "user/*.rs openid fhirUser", [REDIRECT], cheap.hash(SECRET)
    )
    return username, local_prac, app_id


async def test_professional_signs_in_upstream(sites: Sites) -> None:
    rpps = new_rpps()
    username, local_prac, app_id = await _accounts(sites, rpps)
    verifier = secrets.token_urlsafe(48)
    params = {**Flow.params(app_id, "user/*.rs openid fhirUser", verifier, "app-state"), "aud": FED}
    async with httpx.AsyncClient(transport=sites.transport, base_url=FED + "/") as browser:
        start = await browser.get("auth/authorize", params=params)
        assert start.status_code == 200
        approval = await _upstream_login(browser, start.text, username)
        assert approval.status_code == 200, approval.text
        assert f"rpps:{rpps}" in approval.text and "Approve" in approval.text
        form = {
            "rid": hidden(approval.text, "rid"),
            "csrf": hidden(approval.text, "csrf"),
            "decision": "approve",
        }
        done = await browser.post(_action(approval.text), data=form)
        assert done.status_code == 302
        q = query_of(done.headers["location"])
        assert q["state"] == "app-state"
        data = {
            "grant_type": "authorization_code",
            "code": q["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        token = await browser.post("auth/token", data=data, headers=basic(app_id, SECRET))
        assert token.status_code == 200, token.text
        claims = await sites.fed.state.auth.tokens.verify(token.json()["access_token"])
        assert claims["fhirUser"] == f"Practitioner/{local_prac}"
        assert (claims["rpps"], claims["profession"], claims["role"]) == (rpps, "60", "practitioner")

        # A second visit finds the same local user (matched by RPPS, not created again).
        start = await browser.get("auth/authorize", params={**params, "prompt": "login"})
        again = await _upstream_login(browser, start.text, username)
        assert "Approve" in again.text
    fed_users = sites.fed.state.auth.db["auth_users"]
    assert await fed_users.count_documents({"practitioner": local_prac}) == 1
    stored = await fed_users.find_one({"practitioner": local_prac})
    assert stored is not None and stored["password"] is None and stored["upstream"]["iss"] == UPSTREAM


async def test_unknown_rpps_is_not_signed_in(sites: Sites) -> None:
    username, _, app_id = await _accounts(sites, new_rpps(), local=False)
    params = {**Flow.params(app_id, "user/*.rs", "v" * 43, "st"), "aud": FED}
    async with httpx.AsyncClient(transport=sites.transport, base_url=FED + "/") as browser:
        start = await browser.get("auth/authorize", params=params)
        page = await _upstream_login(browser, start.text, username)
        assert page.status_code == 200
        assert "No active practitioner account matches your RPPS number" in page.text
        assert 'name="password"' in page.text


async def test_callback_needs_the_state_of_this_browser(sites: Sites) -> None:
    async with httpx.AsyncClient(transport=sites.transport, base_url=FED + "/") as browser:
        r = await browser.get("auth/upstream/callback", params={"code": "x", "state": "forged"})
        assert r.status_code == 400
        assert "location" not in r.headers


def test_claim_mapping() -> None:
    claims: dict[str, Any] = {
        "SubjectRefPro": {"exercices": [{"codeProfession": "10"}]},
        "SubjectNameID": "812345678901",
    }
    assert pick(claims, "SubjectRefPro.exercices[0].codeProfession") == "10"
    assert pick(claims, "SubjectRefPro.exercices[3].codeProfession") is None
    assert pick(claims, "missing.path") is None
    assert parse_mapping('{"rpps": "SubjectNameID"}') == {"rpps": "SubjectNameID"}
    for bad in ("not json", "[]", '{"name": "x"}', '{"rpps": 3}'):
        with pytest.raises(ValueError):
            parse_mapping(bad)
