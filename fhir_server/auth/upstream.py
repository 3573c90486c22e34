"""Federation: professionals log in at an upstream OpenID provider (Pro Santé Connect in production).

The upstream is configured by settings only (``FHIR_UPSTREAM_*``): issuer, client id and secret, scope,
and a claim mapping ``{our claim: dotted path}`` (``"rpps": "SubjectRefPro.exercices[0].codeRPPS"``);
``rpps`` is required. The flow is an authorization code flow with PKCE S256, ``state`` and ``nonce``
kept in the pending authorization request (:mod:`fhir_server.auth.store`). Authlib builds the
authorization URL, the PKCE challenge and the token request; httpx sends them (Authlib's own httpx
client is not used: in 1.9 it warns about ``httpx2`` at import). The ``id_token`` is checked with the
provider's JWK Set (issuer, audience, expiry, nonce), and the userinfo endpoint, when the provider has
one, adds its claims (the subject must match). An IDNPS (``8`` + RPPS) is read as the RPPS.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhir_server.auth.smart import server_urls
from fhir_server.config import Settings

_METADATA_CACHE_S = 300.0
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_IDNPS = re.compile(r"8(\d{11})")


class UpstreamError(Exception):
    """The upstream login did not give a usable identity; the message is safe to show."""


def parse_mapping(text: str) -> dict[str, str]:
    """The claim mapping setting: a JSON object of strings that names ``rpps``."""
    try:
        mapping = json.loads(text)
    except ValueError as exc:
        raise ValueError("FHIR_UPSTREAM_CLAIMS is not JSON") from exc
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ValueError("FHIR_UPSTREAM_CLAIMS must map claim names to dotted paths")
    if "rpps" not in mapping:
        raise ValueError("FHIR_UPSTREAM_CLAIMS must say where the RPPS is (key 'rpps')")
    return {str(k): v for k, v in mapping.items()}


def pick(claims: Any, path: str) -> Any:
    """The value at a dotted path with list indexes (``a.b[0].c``), or None."""
    value = claims
    for name, index in _PATH_PART.findall(path):
        if name:
            value = value.get(name) if isinstance(value, dict) else None
        else:
            i = int(index)
            value = value[i] if isinstance(value, list) and i < len(value) else None
        if value is None:
            return None
    return value


class Upstream:
    """One upstream OpenID provider."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.issuer = settings.upstream_issuer.rstrip("/")
        self.name = settings.upstream_name
        self.client_id = settings.upstream_client_id
        self._secret = settings.upstream_client_secret
        self.scope = settings.upstream_scope
        self.mapping = parse_mapping(settings.upstream_claims)
        self.redirect_uri = server_urls(settings.fhir_base)["upstream_callback"]
        self.transport = transport
        self._metadata: tuple[float, dict[str, Any]] | None = None

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, timeout=10.0)

    async def _get_json(self, http: httpx.AsyncClient, url: str, **kwargs: Any) -> Any:
        try:
            resp = await http.get(url, **kwargs)
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UpstreamError(f"{self.name} did not answer as expected.") from exc

    async def metadata(self) -> dict[str, Any]:
        """The provider's OpenID configuration (kept five minutes)."""
        if self._metadata and time.monotonic() - self._metadata[0] < _METADATA_CACHE_S:
            return self._metadata[1]
        async with self._http() as http:
            meta = await self._get_json(http, f"{self.issuer}/.well-known/openid-configuration")
        if not isinstance(meta, dict) or str(meta.get("issuer", "")).rstrip("/") != self.issuer:
            raise UpstreamError(f"{self.name} announces another issuer.")
        self._metadata = (time.monotonic(), meta)
        return meta

    async def start(self) -> tuple[str, dict[str, str]]:
        """The URL to send the browser to, and the secrets to keep until the callback."""
        meta = await self.metadata()
        secrets = {"state": generate_token(32), "nonce": generate_token(32), "verifier": generate_token(64)}
        url = prepare_grant_uri(
            meta["authorization_endpoint"],
            self.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=self.scope,
            state=secrets["state"],
            nonce=secrets["nonce"],
            code_challenge=create_s256_code_challenge(secrets["verifier"]),
            code_challenge_method="S256",
        )
        return url, secrets

    async def finish(self, code: str, kept: dict[str, str]) -> dict[str, Any]:
        """Exchange the code, check the id_token, read userinfo; returns our mapped claims."""
        meta = await self.metadata()
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=self.redirect_uri, code_verifier=kept["verifier"]
        )
        async with self._http() as http:
            try:
                resp = await http.post(
                    meta["token_endpoint"],
                    content=body,
                    auth=(self.client_id, self._secret),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                )
                token = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise UpstreamError(f"{self.name} did not answer as expected.") from exc
            if resp.status_code != 200 or not isinstance(token, dict) or "id_token" not in token:
                raise UpstreamError(f"{self.name} refused the login.")
            claims = await self._id_token_claims(http, meta, str(token["id_token"]), kept["nonce"])
            if meta.get("userinfo_endpoint") and token.get("access_token"):
                headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"}
                info = await self._get_json(http, meta["userinfo_endpoint"], headers=headers)
                if not isinstance(info, dict) or info.get("sub") != claims.get("sub"):
                    raise UpstreamError(f"{self.name} described another user.")
                claims = {**claims, **info}
        mapped = {name: pick(claims, path) for name, path in self.mapping.items()}
        rpps = mapped.get("rpps")
        if not isinstance(rpps, str | int) or not str(rpps).strip():
            raise UpstreamError(f"{self.name} did not give an RPPS number.")
        rpps = str(rpps).strip()
        idnps = _IDNPS.fullmatch(rpps)
        mapped["rpps"] = idnps.group(1) if idnps else rpps
        mapped["iss"], mapped["sub"] = self.issuer, str(claims.get("sub"))
        return mapped

    async def _id_token_claims(
        self, http: httpx.AsyncClient, meta: dict[str, Any], id_token: str, nonce: str
    ) -> dict[str, Any]:
        keys = KeySet.import_key_set(await self._get_json(http, meta["jwks_uri"]))
        algs = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        try:
            decoded = jwt.decode(id_token, keys, algorithms=[a for a in algs if a != "none"])
            jwt.JWTClaimsRegistry(
                leeway=30,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise UpstreamError(f"The identity token of {self.name} is not valid.") from exc
        return dict(decoded.claims)
