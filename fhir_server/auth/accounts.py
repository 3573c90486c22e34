"""Users (who log in) and clients (the apps that ask for tokens), kept in MongoDB.

``auth_users``   {_id, username, password: argon2 hash | None, role, patients: [ids], practitioner: id | None,
                  disabled, upstream: {iss, sub} | None, created}
``auth_clients`` {_id: client_id, kind: public|symmetric|asymmetric, secret: argon2 hash | None,
                  jwks: JWK Set | None, jwks_uri | None, redirect_uris, scope, role | None, created}

A user's professional claims (RPPS, profession, specialty) are not stored here: they are read from the
linked Practitioner resource each time a token is issued (:mod:`fhir_server.auth.claims`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from fhir_server.auth.passwords import verify_client_secret, verify_secret
from fhir_server.auth.scope_match import USER_CONTEXTS, allowed_scopes

USERS = "auth_users"
CLIENTS = "auth_clients"

USER_ROLES = ("patient", "representative", "practitioner", "admin")
CLIENT_ROLES = ("cnam", "research")
CLIENT_KINDS = ("public", "symmetric", "asymmetric")

# Token endpoint authentication method of each kind of client.
_AUTH_METHODS = {
    "public": {"none"},
    "symmetric": {"client_secret_basic", "client_secret_post"},
    "asymmetric": {"private_key_jwt"},
}


async def create_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Usernames are unique; users are found by their Practitioner at federated login."""
    await db[USERS].create_indexes(
        [IndexModel([("username", ASCENDING)], unique=True), IndexModel([("practitioner", ASCENDING)])]
    )


class AccountError(Exception):
    """A user or client cannot be created as asked; the message says why."""


@dataclass(frozen=True)
class User:
    """Someone who logs in: a patient, a representative of patients, a professional or an admin."""

    id: str
    username: str
    role: str
    patients: list[str] = field(default_factory=list)
    practitioner: str | None = None
    disabled: bool = False
    password: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> User:
        return cls(
            doc["_id"],
            doc["username"],
            doc["role"],
            list(doc.get("patients") or []),
            doc.get("practitioner"),
            bool(doc.get("disabled")),
            doc.get("password"),
        )

    @property
    def fhir_user(self) -> str | None:
        """The FHIR resource this user is (``fhirUser``), when there is one."""
        if self.role in ("practitioner", "admin") and self.practitioner:
            return f"Practitioner/{self.practitioner}"
        if self.role == "patient" and self.patients:
            return f"Patient/{self.patients[0]}"
        return None

    def check_password(self, password: str) -> bool:
        return verify_secret(self.password, password)


@dataclass(frozen=True)
class Client(ClientMixin):
    """A registered app, in the shape Authlib asks of a client."""

    client_id: str
    kind: str
    scope: str
    redirect_uris: list[str] = field(default_factory=list)
    secret: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    role: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Client:
        return cls(
            doc["_id"],
            doc["kind"],
            doc.get("scope", ""),
            list(doc.get("redirect_uris") or []),
            doc.get("secret"),
            doc.get("jwks"),
            doc.get("jwks_uri"),
            doc.get("role"),
        )

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous registration stands in for a missing redirect_uri.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        # None makes Authlib answer invalid_scope: SMART apps must ask for scopes.
        if not scope:
            return None
        contexts = set().union(*USER_CONTEXTS.values())
        granted = allowed_scopes(scope, self.scope, contexts)
        return " ".join(granted) or None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.kind == "symmetric" and verify_client_secret(self.secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in _AUTH_METHODS[self.kind]

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self.redirect_uris)

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":
            return self.kind == "asymmetric"
        return grant_type in ("authorization_code", "refresh_token")


class Users:
    """The ``auth_users`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._coll = db[USERS]

    async def add(
        self,
        username: str,
        password_hash: str | None,
        role: str,
        patients: list[str] | None = None,
        practitioner: str | None = None,
        upstream: dict[str, str] | None = None,
    ) -> User:
        """Create a user; the password must already be hashed."""
        if role not in USER_ROLES:
            raise AccountError(f"unknown role {role!r}; one of {', '.join(USER_ROLES)}")
        if role in ("patient", "representative") and not patients:
            raise AccountError(f"a {role} user needs --patient")
        if role == "patient" and patients and len(patients) > 1:
            raise AccountError("a patient user is one patient")
        if role == "practitioner" and not practitioner:
            raise AccountError("a practitioner user needs --practitioner")
        doc = {
            "_id": f"u-{secrets.token_hex(8)}",
            "username": username,
            "password": password_hash,
            "role": role,
            "patients": patients or [],
            "practitioner": practitioner,
            "disabled": False,
            "upstream": upstream,
            "created": datetime.now(UTC),
        }
        try:
            await self._coll.insert_one(doc)
        except DuplicateKeyError as exc:
            raise AccountError(f"user {username!r} exists") from exc
        return User.from_doc(doc)

    async def get(self, user_id: str) -> User | None:
        doc = await self._coll.find_one({"_id": user_id})
        return User.from_doc(doc) if doc else None

    async def by_username(self, username: str) -> User | None:
        doc = await self._coll.find_one({"username": username})
        return User.from_doc(doc) if doc else None

    async def by_practitioner(self, practitioner_id: str) -> User | None:
        """The user linked to a Practitioner resource, if any (possibly disabled)."""
        doc = await self._coll.find_one({"practitioner": practitioner_id})
        return User.from_doc(doc) if doc else None

    async def all(self) -> list[User]:
        return [User.from_doc(d) async for d in self._coll.find().sort("username", 1)]

    async def disable(self, username: str) -> bool:
        """Disable a user (they can no longer log in or refresh); False when there is no such user."""
        result = await self._coll.update_one({"username": username}, {"$set": {"disabled": True}})
        return result.matched_count == 1


class Clients:
    """The ``auth_clients`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._coll = db[CLIENTS]

    async def add(
        self,
        client_id: str,
        kind: str,
        scope: str,
        redirect_uris: list[str] | None = None,
        secret_hash: str | None = None,
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        role: str | None = None,
    ) -> Client:
        """Register a client; a symmetric client's secret must already be hashed."""
        if kind not in CLIENT_KINDS:
            raise AccountError(f"unknown client kind {kind!r}")
        if role is not None and role not in CLIENT_ROLES:
            raise AccountError(f"unknown client role {role!r}; one of {', '.join(CLIENT_ROLES)}")
        if kind == "symmetric" and not secret_hash:
            raise AccountError("a confidential symmetric client needs a secret")
        if kind == "asymmetric" and not (jwks or jwks_uri):
            raise AccountError("a confidential asymmetric client needs --jwks or --jwks-uri")
        if kind == "public" and not redirect_uris:
            raise AccountError("a public client needs --redirect-uri")
        doc = {
            "_id": client_id,
            "kind": kind,
            "scope": scope,
            "redirect_uris": redirect_uris or [],
            "secret": secret_hash,
            "jwks": jwks,
            "jwks_uri": jwks_uri,
            "role": role,
            "created": datetime.now(UTC),
        }
        try:
            await self._coll.insert_one(doc)
        except DuplicateKeyError as exc:
            raise AccountError(f"client {client_id!r} exists") from exc
        return Client.from_doc(doc)

    async def get(self, client_id: str) -> Client | None:
        doc = await self._coll.find_one({"_id": client_id})
        return Client.from_doc(doc) if doc else None

    async def all(self) -> list[Client]:
        return [Client.from_doc(d) async for d in self._coll.find().sort("_id", 1)]

    async def remove(self, client_id: str) -> bool:
        """Delete a client; False when there is no such client."""
        result = await self._coll.delete_one({"_id": client_id})
        return result.deleted_count == 1
