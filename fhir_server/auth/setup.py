"""The authorization services of one server process, built at start-up (``app.state.auth``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.auth import accounts, store
from fhir_server.auth.authorize import AuthorizeFlow
from fhir_server.auth.keys import SigningKeys
from fhir_server.auth.server import SmartServer
from fhir_server.auth.tokens import RevocationList, Tokens
from fhir_server.auth.upstream import Upstream
from fhir_server.config import Settings


@dataclass
class Auth:
    """Signing keys and access tokens, the OAuth server, the browser flow and the upstream provider."""

    settings: Settings
    db: AsyncDatabase[dict[str, Any]]
    keys: SigningKeys
    tokens: Tokens
    server: SmartServer
    flow: AuthorizeFlow
    upstream: Upstream | None


async def build_auth(settings: Settings, db: AsyncDatabase[dict[str, Any]]) -> Auth:
    """Load (or make) the signing keys, create the collections' indexes, assemble the server."""
    await accounts.create_indexes(db)
    await store.create_indexes(db)
    keys = SigningKeys(db, settings.key_rotation_days)
    await keys.load()
    tokens = Tokens(keys, RevocationList(db), settings.token_issuer, settings.fhir_base)
    # Authlib's hooks run in worker threads and come back to this loop (see fhir_server.auth.server).
    server = SmartServer(settings, db, tokens, asyncio.get_running_loop())
    upstream = Upstream(settings) if settings.upstream_issuer else None
    return Auth(settings, db, keys, tokens, server, AuthorizeFlow(server, upstream), upstream)
