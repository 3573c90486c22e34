"""``fhir-server users …``, ``clients …`` and ``token``: accounts and operator tokens.

Passwords and client secrets are read from standard input (``--password-stdin``, ``--secret-stdin``),
never from the command line, and never printed or logged. ``token`` prints only the access token, so
``TOKEN=$(fhir-server token --scope …)`` works.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pymongo.asynchronous.database import AsyncDatabase

from fhir_server.auth.accounts import (
    CLIENT_ROLES,
    USER_ROLES,
    AccountError,
    Client,
    Clients,
    Users,
    create_indexes,
)
from fhir_server.auth.claims import client_claims, patient_exists, practitioner_resource, user_claims
from fhir_server.auth.keys import SigningKeys
from fhir_server.auth.passwords import hash_secret
from fhir_server.auth.scope_match import USER_CONTEXTS, allowed_scopes
from fhir_server.auth.store import LaunchContext
from fhir_server.auth.tokens import RevocationList, Tokens
from fhir_server.config import Settings

CLI_CLIENT_ID = "fhir-server-cli"

SettingsOf = Callable[[argparse.Namespace], Settings]


class CliError(Exception):
    """A command cannot do what was asked; the message goes to stderr."""


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    from fhir_server.storage.client import Mongo
    from fhir_server.storage.launcher import database

    async with database(settings) as db:
        mongo = Mongo(db.uri, settings.mongo_db)
        try:
            await create_indexes(mongo.db)
            yield mongo.db
        finally:
            await mongo.close()


def _secret_from_stdin(what: str) -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise CliError(f"no {what} on standard input")
    return line


async def _users_add(args: argparse.Namespace, settings: Settings) -> None:
    if not args.password_stdin:
        raise CliError("give the password on standard input with --password-stdin")
    password = _secret_from_stdin("password")
    async with _database(settings) as db:
        # A typo in an id would give a user who sees nothing, or someone else: check the resources exist.
        for pid in args.patient or []:
            if not await patient_exists(db, pid):
                raise CliError(f"no Patient {pid!r}")
        if args.practitioner and await practitioner_resource(db, args.practitioner) is None:
            raise CliError(f"no Practitioner {args.practitioner!r}")
        password_hash = await asyncio.to_thread(hash_secret, password)
        user = await Users(db).add(args.username, password_hash, args.role, args.patient, args.practitioner)
    print(f"user {user.username} ({user.role}) added as {user.id}")


async def _users_list(args: argparse.Namespace, settings: Settings) -> None:
    async with _database(settings) as db:
        users = await Users(db).all()
    for u in users:
        state = "disabled" if u.disabled else "active"
        print(
            f"{u.username}\t{u.role}\t{state}\t{u.fhir_user or '-'}\tpatients={','.join(u.patients) or '-'}"
        )


async def _users_disable(args: argparse.Namespace, settings: Settings) -> None:
    async with _database(settings) as db:
        if not await Users(db).disable(args.username):
            raise CliError(f"no user {args.username!r}")
    print(f"user {args.username} disabled")


def _read_jwks(path: str) -> dict[str, Any]:
    try:
        keys = KeySet.import_key_set(orjson.loads(Path(path).read_bytes()))
    except (OSError, ValueError, JoseError, TypeError) as exc:
        raise CliError(f"{path} is not a readable JWK Set") from exc
    # Only the public halves are kept, whatever the file holds.
    return keys.as_dict(private=False)


async def _clients_add(args: argparse.Namespace, settings: Settings) -> None:
    secret_hash, jwks = None, None
    if args.public:
        kind = "public"
    elif args.secret_stdin:
        kind, secret_hash = "symmetric", hash_secret(_secret_from_stdin("client secret"))
    elif args.jwks or args.jwks_uri:
        kind = "asymmetric"
        jwks = _read_jwks(args.jwks) if args.jwks else None
    else:
        raise CliError("say how the client authenticates: --public, --secret-stdin, --jwks or --jwks-uri")
    async with _database(settings) as db:
        client = await Clients(db).add(
            args.client_id, kind, args.scope, args.redirect_uri, secret_hash, jwks, args.jwks_uri, args.role
        )
    print(f"client {client.client_id} ({client.kind}) added")


async def _clients_list(args: argparse.Namespace, settings: Settings) -> None:
    async with _database(settings) as db:
        clients = await Clients(db).all()
    for c in clients:
        uris = ",".join(c.redirect_uris) or "-"
        print(f"{c.client_id}\t{c.kind}\trole={c.role or '-'}\tscope={c.scope}\tredirect={uris}")


async def _clients_remove(args: argparse.Namespace, settings: Settings) -> None:
    async with _database(settings) as db:
        if not await Clients(db).remove(args.client_id):
            raise CliError(f"no client {args.client_id!r}")
    print(f"client {args.client_id} removed")


async def _token(args: argparse.Namespace, settings: Settings) -> None:
    async with _database(settings) as db:
        client = Client(CLI_CLIENT_ID, "public", args.scope)
        if args.client:
            found = await Clients(db).get(args.client)
            if found is None:
                raise CliError(f"no client {args.client!r}")
            client = found
        keys = SigningKeys(db, settings.key_rotation_days)
        await keys.load()
        tokens = Tokens(keys, RevocationList(db), settings.token_issuer, settings.fhir_base)
        context = LaunchContext(args.patient)
        if args.user:
            user = await Users(db).by_username(args.user)
            if user is None or user.disabled:
                raise CliError(f"no active user {args.user!r}")
            scope = " ".join(allowed_scopes(args.scope, args.scope, USER_CONTEXTS[user.role]))
            claims = await user_claims(db, user, client, scope, context)
        else:
            claims = {**client_claims(client, args.scope), "patient": args.patient}
        token, _ = await tokens.issue(claims, settings.access_token_ttl)
    sys.stdout.write(token + "\n")


def add_commands(
    sub: Any, data_dir: Callable[[argparse.ArgumentParser], None], settings_of: SettingsOf
) -> None:
    """Register ``users``, ``clients`` and ``token`` on the ``fhir-server`` parser."""

    def runner(fn: Callable[[argparse.Namespace, Settings], Any]) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            try:
                asyncio.run(fn(args, settings_of(args)))
            except (CliError, AccountError) as exc:
                print(f"fhir-server: {exc}", file=sys.stderr)
                return 1
            return 0

        return run

    users = sub.add_parser("users", help="manage the users who log in").add_subparsers(
        dest="action", required=True
    )
    add = users.add_parser("add", help="add a user (password read from standard input)")
    add.add_argument("username")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--role", required=True, choices=USER_ROLES)
    add.add_argument(
        "--patient", action="append", help="Patient id (patient: theirs; representative: repeatable)"
    )
    add.add_argument("--practitioner", help="Practitioner id of a practitioner or admin")
    data_dir(add)
    add.set_defaults(func=runner(_users_add))
    listing = users.add_parser("list", help="list the users")
    data_dir(listing)
    listing.set_defaults(func=runner(_users_list))
    disable = users.add_parser("disable", help="disable a user")
    disable.add_argument("username")
    data_dir(disable)
    disable.set_defaults(func=runner(_users_disable))

    clients = sub.add_parser("clients", help="manage the registered apps").add_subparsers(
        dest="action", required=True
    )
    cadd = clients.add_parser("add", help="register a client")
    cadd.add_argument("client_id")
    how = cadd.add_mutually_exclusive_group(required=True)
    how.add_argument("--public", action="store_true", help="a public app (PKCE, no secret)")
    how.add_argument(
        "--secret-stdin", action="store_true", help="a confidential app; secret on standard input"
    )
    how.add_argument("--jwks", help="a confidential app with these public keys (JWK Set file)")
    how.add_argument("--jwks-uri", help="a confidential app publishing its keys at this URL")
    cadd.add_argument("--redirect-uri", action="append", help="a registered redirect URI (repeatable)")
    cadd.add_argument("--scope", required=True, help="the scopes the client may be granted")
    cadd.add_argument("--role", choices=CLIENT_ROLES, help="role claim of the client's own tokens")
    data_dir(cadd)
    cadd.set_defaults(func=runner(_clients_add))
    clist = clients.add_parser("list", help="list the clients")
    data_dir(clist)
    clist.set_defaults(func=runner(_clients_list))
    cremove = clients.add_parser("remove", help="remove a client")
    cremove.add_argument("client_id")
    data_dir(cremove)
    cremove.set_defaults(func=runner(_clients_remove))

    token = sub.add_parser("token", help="print an access token (for operators and tests)")
    token.add_argument("--scope", required=True)
    token.add_argument("--patient", help="patient in context")
    token.add_argument("--user", help="speak for this user (with their role and professional claims)")
    token.add_argument("--client", help=f"client id carried by the token (default {CLI_CLIENT_ID})")
    data_dir(token)
    token.set_defaults(func=runner(_token))
