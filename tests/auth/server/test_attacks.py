"""Attacks on the authorization server, each refused without giving anything away: stolen or replayed
codes, PKCE mismatches and downgrades, unregistered redirect URIs, wrong audiences, revoked refresh
tokens, wrong client secrets, forged form posts."""

from __future__ import annotations

import secrets

import httpx

from tests.auth.server.conftest import REDIRECT, SECRET, Flow, basic, hidden, new_patient, query_of


async def _patient_app(flow: Flow, client: httpx.AsyncClient, scope: str) -> tuple[str, str]:
    pid = await new_patient(client)
    return await flow.user("patient", [pid]), await flow.client(scope=scope)


async def test_code_used_twice_revokes_first_tokens(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    user, app = await _patient_app(flow, client, "patient/*.rs offline_access")
    launch = await flow.launch(browser, app, "patient/*.rs offline_access", user)
    first = await flow.exchange(http, app, launch)
    assert first.status_code == 200
    tokens = first.json()
    second = await flow.exchange(http, app, launch)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert "access_token" not in second.json()
    assert (await flow.introspect(http, app, tokens["access_token"]))["active"] is False
    assert (await flow.introspect(http, app, tokens["refresh_token"]))["active"] is False
    r = await http.post(
        "auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(app, SECRET),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    fhir = await http.get("Patient", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert fhir.status_code == 401


async def test_pkce_verifier_must_match(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    user, app = await _patient_app(flow, client, "patient/*.rs")
    launch = await flow.launch(browser, app, "patient/*.rs", user)
    wrong = await flow.exchange(http, app, launch, verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert "access_token" not in wrong.json()
    # The attempt spent the code: the right verifier afterwards gets nothing either.
    assert (await flow.exchange(http, app, launch)).status_code == 400


async def test_pkce_is_required_and_s256_only(
    flow: Flow, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    _, app = await _patient_app(flow, client, "patient/*.rs")
    verifier = secrets.token_urlsafe(48)
    plain = Flow.params(app, "patient/*.rs", verifier, "st1", code_challenge_method="plain")
    plain["code_challenge"] = verifier
    no_pkce = Flow.params(app, "patient/*.rs", verifier, "st2")
    del no_pkce["code_challenge"], no_pkce["code_challenge_method"]
    no_method = Flow.params(app, "patient/*.rs", verifier, "st3")
    del no_method["code_challenge_method"]
    for params in (plain, no_pkce, no_method):
        r = await browser.get("auth/authorize", params=params)
        assert r.status_code == 302, r.text
        q = query_of(r.headers["location"])
        assert r.headers["location"].startswith(REDIRECT)
        assert q["error"] == "invalid_request"
        assert q["state"] == params["state"]
        assert "code" not in q


async def test_unregistered_redirect_uri_is_never_followed(
    flow: Flow, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    _, app = await _patient_app(flow, client, "patient/*.rs")
    for bad in ("https://evil.example/callback", REDIRECT + "/more", REDIRECT.upper()):
        params = {**Flow.params(app, "patient/*.rs", "v" * 43, "st"), "redirect_uri": bad}
        r = await browser.get("auth/authorize", params=params)
        assert r.status_code == 400
        assert "location" not in r.headers
        assert r.headers["content-type"].startswith("text/html")
    unknown = await browser.get(
        "auth/authorize", params=Flow.params("no-such-app", "patient/*.rs", "v" * 43, "s")
    )
    assert unknown.status_code == 400 and "location" not in unknown.headers


async def test_html_is_escaped(flow: Flow, browser: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    _, app = await _patient_app(flow, client, "patient/*.rs")
    params = {
        **Flow.params(app, "patient/*.rs", "v" * 43, "st"),
        "redirect_uri": "https://x/<script>alert(1)</script>",
    }
    r = await browser.get("auth/authorize", params=params)
    assert r.status_code == 400
    assert "<script>" not in r.text


async def test_audience_must_be_this_server(
    flow: Flow, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    _, app = await _patient_app(flow, client, "patient/*.rs")
    for aud in ("https://other.example/fhir", None):
        params = Flow.params(app, "patient/*.rs", "v" * 43, "st")
        if aud is None:
            del params["aud"]
        else:
            params["aud"] = aud
        r = await browser.get("auth/authorize", params=params)
        assert r.status_code == 302
        q = query_of(r.headers["location"])
        assert q["error"] == "invalid_request" and "code" not in q


async def test_unknown_launch_is_refused(
    flow: Flow, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    _, app = await _patient_app(flow, client, "launch patient/*.rs")
    params = Flow.params(app, "launch patient/*.rs", "v" * 43, "st", launch="made-up")
    r = await browser.get("auth/authorize", params=params)
    assert r.status_code == 302 and query_of(r.headers["location"])["error"] == "invalid_request"


async def test_revoked_refresh_token_is_refused(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    user, app = await _patient_app(flow, client, "patient/*.rs offline_access")
    tokens = (
        await flow.exchange(http, app, await flow.launch(browser, app, "patient/*.rs offline_access", user))
    ).json()
    other = await flow.client(scope="patient/*.rs")
    # Another client cannot revoke it.
    foreign = await http.post(
        "auth/revoke", data={"token": tokens["refresh_token"]}, headers=basic(other, SECRET)
    )
    assert foreign.status_code == 400
    assert (await flow.introspect(http, app, tokens["refresh_token"]))["active"] is True
    r = await http.post("auth/revoke", data={"token": tokens["refresh_token"]}, headers=basic(app, SECRET))
    assert r.status_code == 200
    refresh = await http.post(
        "auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(app, SECRET),
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    # Revoking the refresh token took the access token of its family along.
    assert (await flow.introspect(http, app, tokens["access_token"]))["active"] is False


async def test_revoked_access_token_stops_working(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    user, app = await _patient_app(flow, client, "patient/*.rs")
    tokens = (await flow.exchange(http, app, await flow.launch(browser, app, "patient/*.rs", user))).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await http.get("Patient", headers=headers)).status_code == 200
    r = await http.post(
        "auth/revoke",
        data={"token": tokens["access_token"], "token_type_hint": "access_token"},
        headers=basic(app, SECRET),
    )
    assert r.status_code == 200
    assert (await flow.introspect(http, app, tokens["access_token"]))["active"] is False
    assert (await http.get("Patient", headers=headers)).status_code == 401
    # Revoking something unknown is not an error (RFC 7009), and says nothing.
    assert (
        await http.post("auth/revoke", data={"token": "nothing"}, headers=basic(app, SECRET))
    ).status_code == 200


async def test_wrong_client_secret(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    user, app = await _patient_app(flow, client, "patient/*.rs")
    launch = await flow.launch(browser, app, "patient/*.rs", user)
    data = {
        "grant_type": "authorization_code",
        "code": launch.code,
        "redirect_uri": REDIRECT,
        "code_verifier": launch.verifier,
    }
    r = await http.post("auth/token", data=data, headers=basic(app, "not the secret"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    posted = await http.post("auth/token", data={**data, "client_id": app, "client_secret": "not the secret"})
    assert posted.status_code in (400, 401) and posted.json()["error"] == "invalid_client"
    # Without credentials, a confidential client cannot pass as a public one.
    bare = await http.post("auth/token", data={**data, "client_id": app})
    assert bare.json()["error"] == "invalid_client"
    # The code survived those attempts: they never reached it.
    ok = await http.post("auth/token", data={**data, "client_id": app, "client_secret": SECRET})
    assert ok.status_code == 200, ok.text
    assert (await http.post("auth/introspect", data={"token": ok.json()["access_token"]})).status_code == 401


async def test_forged_form_posts(
    flow: Flow, browser: httpx.AsyncClient, app_browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    user, app = await _patient_app(flow, client, "patient/*.rs")
    page = await browser.get("auth/authorize", params=Flow.params(app, "patient/*.rs", "v" * 43, "st"))
    rid, csrf = hidden(page.text, "rid"), hidden(page.text, "csrf")
    wrong_csrf = await browser.post(
        "auth/login", data={"rid": rid, "csrf": "x", "username": user, "password": "p"}
    )
    assert wrong_csrf.status_code == 400
    # Another browser (no cookie of this flow) cannot post the victim's form.
    other = await app_browser.post(
        "auth/login", data={"rid": rid, "csrf": csrf, "username": user, "password": "p"}
    )
    assert other.status_code == 400
    approval = await flow.login(browser, page, user)
    stolen = {
        "rid": hidden(approval.text, "rid"),
        "csrf": hidden(approval.text, "csrf"),
        "decision": "approve",
    }
    assert (await app_browser.post("auth/approve", data=stolen)).status_code == 400
    assert (await browser.post("auth/approve", data={**stolen, "csrf": "x"})).status_code == 400
    done = await browser.post("auth/approve", data=stolen)
    assert done.status_code == 302
    # The approval is single-use.
    assert (await browser.post("auth/approve", data=stolen)).status_code == 400


async def test_wrong_password_shows_login_again(
    flow: Flow, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    user, app = await _patient_app(flow, client, "patient/*.rs")
    page = await browser.get("auth/authorize", params=Flow.params(app, "patient/*.rs", "v" * 43, "st"))
    form = {"rid": hidden(page.text, "rid"), "csrf": hidden(page.text, "csrf")}
    for name in (user, "nobody-" + user):
        r = await browser.post("auth/login", data={**form, "username": name, "password": "wrong"})
        assert r.status_code == 200
        assert "Unknown username or wrong password." in r.text
        assert "Approve" not in r.text
    found = await flow.auth.server.users.by_username(user)
    assert found is not None
    assert await flow.auth.db["auth_sessions"].count_documents({"user_id": found.id}) == 0


async def test_public_client_needs_pkce_verifier(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    user = await flow.user("patient", [pid])
    app = await flow.client("public", scope="patient/*.rs")
    launch = await flow.launch(browser, app, "patient/*.rs", user)
    data = {
        "grant_type": "authorization_code",
        "code": launch.code,
        "redirect_uri": REDIRECT,
        "client_id": app,
    }
    assert (await http.post("auth/token", data=data)).json()["error"] in ("invalid_request", "invalid_grant")
    launch = await flow.launch(browser, app, "patient/*.rs", user)
    ok = await http.post("auth/token", data={**data, "code": launch.code, "code_verifier": launch.verifier})
    assert ok.status_code == 200, ok.text
    assert ok.json()["patient"] == pid
    # A public client cannot use the client credentials grant.
    cc = await http.post(
        "auth/token", data={"grant_type": "client_credentials", "client_id": app, "scope": "system/*.rs"}
    )
    assert cc.status_code in (400, 401)
    assert cc.json()["error"] in ("invalid_client", "unauthorized_client")


async def test_token_endpoint_answers_oauth_errors(http: httpx.AsyncClient) -> None:
    json_body = await http.post("auth/token", json={"grant_type": "client_credentials"})
    assert json_body.status_code == 400 and json_body.json()["error"] == "invalid_request"
    unknown = await http.post("auth/token", data={"grant_type": "password", "username": "a", "password": "b"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unsupported_grant_type"
