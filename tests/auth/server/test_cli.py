"""``fhir-server users``, ``clients`` and ``token`` against the test database (``FHIR_MONGO_URI``).

Commands run in-process in a worker thread (they start their own event loop), except one run as a real
subprocess to prove that ``token`` prints the token and nothing else."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey

from fhir_server.auth.setup import Auth
from fhir_server.cli import main
from fhir_server.config import Settings
from tests.auth.server.conftest import Flow, hidden, new_patient, new_practitioner, new_rpps, unique
from tests.conftest import BASE


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"FHIR_MONGO_URI": settings.mongo_uri, "FHIR_MONGO_DB": settings.mongo_db, "FHIR_BASE_URL": BASE}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


async def run(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    """Run the CLI in a thread with the given standard input; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        saved = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
        try:
            return main(args)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved

    code = await asyncio.to_thread(call)
    return code, out.getvalue(), err.getvalue()


async def test_users(
    cli_env: dict[str, str], flow: Flow, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    name = unique("cli-patient")
    password = "a long passphrase typed on stdin"
    code, out, _ = await run(
        ["users", "add", name, "--password-stdin", "--role", "patient", "--patient", pid], password + "\n"
    )
    assert code == 0 and name in out and password not in out
    code, out, _ = await run(["users", "list"])
    line = next(x for x in out.splitlines() if x.startswith(name + "\t"))
    assert "\tpatient\tactive\t" in line and f"Patient/{pid}" in line
    stored = await flow.auth.db["auth_users"].find_one({"username": name})
    assert stored is not None and stored["password"].startswith("$argon2id$")
    assert password not in json.dumps(stored, default=str)

    # The user logs in with that password.
    app = await flow.client(scope="patient/*.rs")
    page = await browser.get("auth/authorize", params=Flow.params(app, "patient/*.rs", "v" * 43, "st"))
    form = {
        "rid": hidden(page.text, "rid"),
        "csrf": hidden(page.text, "csrf"),
        "username": name,
        "password": password,
    }
    assert "Approve" in (await browser.post("auth/login", data=form)).text

    code, out, _ = await run(["users", "disable", name])
    assert code == 0
    code, out, _ = await run(["users", "list"])
    assert "\tdisabled\t" in next(x for x in out.splitlines() if x.startswith(name + "\t"))
    assert (await flow.auth.server.users.by_username(name)).disabled  # type: ignore[union-attr]

    # Refusals: no password on stdin, duplicate user, unknown user, missing patient.
    assert (await run(["users", "add", unique("u"), "--role", "patient", "--patient", pid]))[0] == 1
    assert (
        await run(["users", "add", name, "--password-stdin", "--role", "patient", "--patient", pid], "pw\n")
    )[0] == 1
    assert (await run(["users", "disable", "nobody-at-all"]))[0] == 1
    code, _, err = await run(
        ["users", "add", unique("p"), "--password-stdin", "--role", "practitioner", "--practitioner", "nope"],
        "pw\n",
    )
    assert code == 1 and "no Practitioner" in err
    code, _, err = await run(
        ["users", "add", unique("p"), "--password-stdin", "--role", "patient", "--patient", "x"], "pw\n"
    )
    assert code == 1 and "no Patient" in err
    code, _, err = await run(
        ["users", "add", unique("r"), "--password-stdin", "--role", "representative"], "pw\n"
    )
    assert code == 1 and "--patient" in err
    with pytest.raises(SystemExit):
        await run(["users", "add", unique("u"), "--password", "x", "--role", "patient"])


async def test_clients(cli_env: dict[str, str], flow: Flow, tmp_path: Path) -> None:
    public, secret_app, jwks_app, uri_app = (unique(p) for p in ("pub", "sym", "jwks", "uri"))
    code, _, _ = await run(
        [
            "clients",
            "add",
            public,
            "--public",
            "--redirect-uri",
            "https://a.example/cb",
            "--scope",
            "patient/*.rs launch/patient",
        ]
    )
    assert code == 0
    code, _, _ = await run(
        [
            "clients",
            "add",
            secret_app,
            "--secret-stdin",
            "--redirect-uri",
            "https://b.example/cb",
            "--scope",
            "user/*.rs",
        ],
        "s3cr3t-s3cr3t\n",
    )
    assert code == 0
    key = ECKey.generate_key("P-384", parameters={"kid": "k1"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    code, _, _ = await run(
        ["clients", "add", jwks_app, "--jwks", str(path), "--scope", "system/*.rs", "--role", "cnam"]
    )
    assert code == 0
    code, _, _ = await run(
        ["clients", "add", uri_app, "--jwks-uri", "https://c.example/jwks", "--scope", "system/*.rs"]
    )
    assert code == 0

    code, out, _ = await run(["clients", "list"])
    lines = {x.split("\t")[0]: x for x in out.splitlines()}
    assert "\tpublic\t" in lines[public] and "https://a.example/cb" in lines[public]
    assert "\tsymmetric\t" in lines[secret_app]
    assert "\tasymmetric\trole=cnam\t" in lines[jwks_app]
    stored = await flow.auth.db["auth_clients"].find_one({"_id": jwks_app})
    assert stored is not None and "d" not in stored["jwks"]["keys"][0]  # the private half is dropped
    sym = await flow.auth.db["auth_clients"].find_one({"_id": secret_app})
    assert sym is not None and sym["secret"].startswith("$argon2id$") and "s3cr3t" not in sym["secret"]

    assert (await run(["clients", "remove", public]))[0] == 0
    assert (await flow.auth.server.clients.get(public)) is None
    assert (await run(["clients", "remove", public]))[0] == 1
    assert (await run(["clients", "add", jwks_app, "--jwks", str(path), "--scope", "x"]))[0] == 1  # exists
    assert (await run(["clients", "add", unique("x"), "--public", "--scope", "patient/*.rs"]))[
        0
    ] == 1  # no redirect
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    assert (await run(["clients", "add", unique("x"), "--jwks", str(bad), "--scope", "x"]))[0] == 1


async def test_token_for_a_user(
    cli_env: dict[str, str], flow: Flow, client: httpx.AsyncClient, auth: Auth, anonymous: httpx.AsyncClient
) -> None:
    rpps = new_rpps()
    prac = await new_practitioner(client, rpps)
    name = await flow.user("practitioner", practitioner=prac)
    code, out, _ = await run(["token", "--scope", "user/*.rs patient/*.rs system/*.rs", "--user", name])
    assert code == 0
    token = out.strip()
    claims = await auth.tokens.verify(token)
    assert claims["fhirUser"] == f"Practitioner/{prac}"
    assert (claims["rpps"], claims["profession"], claims["specialty"], claims["role"]) == (
        rpps,
        "10",
        "SM54",
        "practitioner",
    )
    assert claims["scope"] == "user/*.rs patient/*.rs"  # no system/ scope for a person
    assert claims["client_id"] == "fhir-server-cli"
    assert (
        await anonymous.get("Practitioner", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    assert (await run(["token", "--scope", "user/*.rs", "--user", "nobody-here"]))[0] == 1
    assert (await run(["token", "--scope", "user/*.rs", "--client", "no-such-client"]))[0] == 1


async def test_token_subprocess_prints_only_the_token(cli_env: dict[str, str], auth: Auth) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fhir_server.cli", "token", "--scope", "system/*.rs", "--patient", "p1"],
        capture_output=True,
        text=True,
        env={**os.environ, **cli_env},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    claims = await auth.tokens.verify(lines[0])
    assert claims["sub"] == claims["client_id"] == "fhir-server-cli"
    assert claims["scope"] == "system/*.rs" and claims["patient"] == "p1"
