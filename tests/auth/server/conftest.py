"""Fixtures of the authorization server tests: users, clients, patients, and a browser (httpx with a
cookie jar) that walks the login and approval pages like a person would.

Every test makes its own users and clients under unique names, so tests share the session database
without seeing each other. Passwords are hashed once for the whole session (argon2 is slow on purpose).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from argon2 import PasswordHasher
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import FastAPI

from fhir_server.auth.setup import Auth
from tests.conftest import BASE, patient

PASSWORD = "correct horse battery staple"
SECRET = "a client secret of forty characters long!"
REDIRECT = "https://app.example/callback"
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
R38 = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
TOKEN_URL = f"{BASE}/auth/token"


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name} in {html[:300]}"
    return found.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Hashes:
    password: str
    secret: str


@pytest.fixture(scope="session")
def hashes() -> Hashes:
    """Argon2id hashes made with small parameters: the server verifies with the parameters stored in
    the hash, so the tests stay fast while the code path is the production one."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return Hashes(cheap.hash(PASSWORD), cheap.hash(SECRET))


@pytest.fixture(scope="session")
def auth(app: FastAPI) -> Auth:
    a: Auth = app.state.auth
    return a


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh browser (own cookie jar) on the app; redirects are not followed, tests read them."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE + "/") as c:
        yield c


@pytest.fixture
async def app_browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser, an attacker's."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE + "/") as c:
        yield c


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An app's back end calling the OAuth endpoints (no cookies, no token)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE + "/") as c:
        yield c


async def new_patient(client: httpx.AsyncClient) -> str:
    r = await client.post("Patient", json=patient())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def new_practitioner(client: httpx.AsyncClient, rpps: str) -> str:
    body = {
        "resourceType": "Practitioner",
        "identifier": [{"system": RPPS_SYSTEM, "value": rpps}],
        "name": [{"family": "Martin", "given": ["Claire"]}],
        "qualification": [
            {"code": {"coding": [{"system": G15, "code": "10"}]}},
            {"code": {"coding": [{"system": R38, "code": "SM54"}]}},
        ],
    }
    r = await client.post("Practitioner", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def new_rpps() -> str:
    return "1" + "".join(secrets.choice("0123456789") for _ in range(10))


@dataclass
class Launch:
    """What an app holds after the redirect back: the code, and what it sent to get it."""

    code: str
    state: str
    verifier: str
    location: str


class Flow:
    """The app side and the person side of an authorization code flow."""

    def __init__(self, auth: Auth, hashes: Hashes) -> None:
        self.auth = auth
        self.hashes = hashes

    async def user(
        self, role: str, patients: list[str] | None = None, practitioner: str | None = None
    ) -> str:
        name = unique(role)
        await self.auth.server.users.add(name, self.hashes.password, role, patients, practitioner)
        return name

    async def client(self, kind: str = "symmetric", scope: str = "", **extra: Any) -> str:
        cid = unique(f"app-{kind}")
        secret = self.hashes.secret if kind == "symmetric" else None
        redirects = extra.pop("redirect_uris", [REDIRECT])
        await self.auth.server.clients.add(cid, kind, scope, redirects, secret, **extra)
        return cid

    @staticmethod
    def params(client_id: str, scope: str, verifier: str, state: str, **extra: str) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": state,
            "aud": BASE,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            **extra,
        }

    async def login(self, browser: httpx.AsyncClient, page: httpx.Response, username: str) -> httpx.Response:
        assert page.status_code == 200, page.text
        assert 'name="password"' in page.text
        form = {"rid": hidden(page.text, "rid"), "csrf": hidden(page.text, "csrf")}
        return await browser.post("auth/login", data={**form, "username": username, "password": PASSWORD})

    async def approve(
        self,
        browser: httpx.AsyncClient,
        page: httpx.Response,
        patient: str | None = None,
        decision: str = "approve",
    ) -> httpx.Response:
        assert page.status_code == 200, page.text
        assert "Approve" in page.text, page.text
        form = {"rid": hidden(page.text, "rid"), "csrf": hidden(page.text, "csrf"), "decision": decision}
        if patient is not None:
            form["patient"] = patient
        return await browser.post("auth/approve", data=form)

    async def launch(
        self,
        browser: httpx.AsyncClient,
        client_id: str,
        scope: str,
        username: str,
        patient: str | None = None,
        **extra: str,
    ) -> Launch:
        """Authorize, log in, approve; returns the code from the redirect."""
        verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(8)
        page = await browser.get(
            "auth/authorize", params=self.params(client_id, scope, verifier, state, **extra)
        )
        # A browser with a live login session goes straight to the approval page.
        approval = await self.login(browser, page, username) if 'name="password"' in page.text else page
        done = await self.approve(browser, approval, patient)
        assert done.status_code == 302, done.text
        location = done.headers["location"]
        assert location.startswith(REDIRECT + "?")
        q = query_of(location)
        assert q["state"] == state
        return Launch(q["code"], state, verifier, location)

    @staticmethod
    async def exchange(
        http: httpx.AsyncClient, client_id: str, launch: Launch, verifier: str | None = None
    ) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": launch.code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier or launch.verifier,
        }
        return await http.post("auth/token", data=data, headers=basic(client_id, SECRET))

    @staticmethod
    async def introspect(http: httpx.AsyncClient, client_id: str, token: str) -> dict[str, Any]:
        r = await http.post("auth/introspect", data={"token": token}, headers=basic(client_id, SECRET))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
def flow(auth: Auth, hashes: Hashes) -> Flow:
    return Flow(auth, hashes)
