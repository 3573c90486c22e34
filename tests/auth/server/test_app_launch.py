"""The SMART app launch end to end, with httpx as the browser: standalone (patient, representative,
professional), EHR launch, refresh-token rotation, OpenID Connect id_token, userinfo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.auth.server.conftest import SECRET, Flow, basic, new_patient, new_practitioner, new_rpps
from tests.conftest import BASE


async def test_standalone_patient_launch(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    other = await new_patient(client)
    user = await flow.user("patient", [pid])
    app = await flow.client(scope="launch/patient patient/*.rs openid fhirUser offline_access")
    scope = "launch/patient patient/*.rs patient/Observation.cruds user/*.rs openid fhirUser offline_access"
    launch = await flow.launch(browser, app, scope, user)

    r = await flow.exchange(http, app, launch)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert body["patient"] == pid
    assert body["need_patient_banner"] is False
    assert body["smart_style_url"] == f"{BASE}/auth/smart-style.json"
    # Narrowed: the client may not write, a patient user gets no user/ scope.
    granted = body["scope"].split()
    assert set(granted) == {
        "launch/patient",
        "patient/*.rs",
        "patient/Observation.rs",
        "openid",
        "fhirUser",
        "offline_access",
    }

    headers = {"Authorization": f"Bearer {body['access_token']}"}
    mine = await http.get(f"Patient/{pid}", headers=headers)
    assert mine.status_code == 200, mine.text
    assert (await http.get(f"Patient/{other}", headers=headers)).status_code in (403, 404)

    claims = await flow.introspect(http, app, body["access_token"])
    assert claims["active"] is True
    assert claims["patient"] == pid and claims["role"] == "patient"
    assert claims["fhirUser"] == f"Patient/{pid}"
    assert claims["client_id"] == app

    # Refresh: a new refresh token each time, the old one refused and its family revoked.
    first = body["refresh_token"]
    r2 = await http.post(
        "auth/token", data={"grant_type": "refresh_token", "refresh_token": first}, headers=basic(app, SECRET)
    )
    assert r2.status_code == 200, r2.text
    second = r2.json()
    assert second["refresh_token"] != first
    assert second["patient"] == pid
    again = await http.post(
        "auth/token", data={"grant_type": "refresh_token", "refresh_token": first}, headers=basic(app, SECRET)
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # Presenting a spent refresh token is treated as theft: the newer ones die too.
    assert (await flow.introspect(http, app, second["refresh_token"]))["active"] is False
    assert (await flow.introspect(http, app, second["access_token"]))["active"] is False


async def test_id_token_and_userinfo(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    user = await flow.user("patient", [pid])
    app = await flow.client(scope="openid fhirUser profile patient/*.rs")
    launch = await flow.launch(browser, app, "openid fhirUser patient/*.rs", user, nonce="n-0S6_WzA2Mj")
    body = (await flow.exchange(http, app, launch)).json()
    keys = KeySet.import_key_set((await http.get("auth/jwks")).json())
    token = jwt.decode(body["id_token"], keys, algorithms=["ES256"])
    assert token.claims["iss"] == BASE
    assert token.claims["aud"] == app
    assert token.claims["fhirUser"] == f"Patient/{pid}"
    assert token.claims["nonce"] == "n-0S6_WzA2Mj"
    assert token.claims["sub"] and token.claims["exp"] > token.claims["iat"]
    info = await http.get("auth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json()["sub"] == token.claims["sub"]
    assert info.json()["fhirUser"] == f"Patient/{pid}"
    assert "refresh_token" not in body  # neither offline_access nor online_access


async def test_session_cookie_skips_login(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    user = await flow.user("patient", [pid])
    app = await flow.client(scope="patient/*.rs online_access")
    first = await flow.launch(browser, app, "patient/*.rs online_access", user)
    cookie = next(c for c in browser.cookies.jar if c.name == "fhir_auth")
    assert cookie.path == "/fhir/auth"
    assert cookie.has_nonstandard_attr("HttpOnly")
    # Same browser, second run of the app: no login page this time.
    page = await browser.get("auth/authorize", params=Flow.params(app, "patient/*.rs", "v" * 43, "s2"))
    assert page.status_code == 200
    assert 'name="password"' not in page.text and "Approve" in page.text
    # online_access: a refresh token that lives as long as the login session, and dies with it.
    body = (await flow.exchange(http, app, first)).json()
    refresh = await flow.introspect(http, app, body["refresh_token"])
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    found = await flow.auth.server.users.by_username(user)
    assert found is not None
    sessions = flow.auth.db["auth_sessions"]
    session = await sessions.find_one({"user_id": found.id})
    assert session is not None and refresh["exp"] <= int(session["exp"].timestamp()) + 1
    await sessions.update_one(
        {"_id": session["_id"]}, {"$set": {"exp": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    assert (await flow.introspect(http, app, body["refresh_token"]))["active"] is False
    data = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    r = await http.post("auth/token", data=data, headers=basic(app, SECRET))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_representative_picks_a_represented_patient(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    child1, child2, stranger = [await new_patient(client) for _ in range(3)]
    user = await flow.user("representative", [child1, child2])
    app = await flow.client(scope="launch/patient patient/*.rs")
    params = Flow.params(app, "launch/patient patient/*.rs", "w" * 43, "st")
    page = await flow.login(browser, await browser.get("auth/authorize", params=params), user)
    assert child1 in page.text and child2 in page.text and stranger not in page.text
    refused = await flow.approve(browser, page, stranger)
    assert refused.status_code == 200 and "Choose one of the patients listed" in refused.text
    done = await flow.approve(browser, refused, child2)
    assert done.status_code == 302
    code = done.headers["location"].split("code=")[1].split("&")[0]
    r = await http.post(
        "auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": params["redirect_uri"],
            "code_verifier": "w" * 43,
        },
        headers=basic(app, SECRET),
    )
    assert r.status_code == 200, r.text
    assert r.json()["patient"] == child2
    claims = await flow.introspect(http, app, r.json()["access_token"])
    assert claims["role"] == "representative" and "fhirUser" not in claims


async def test_practitioner_standalone_with_professional_claims(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    rpps = new_rpps()
    prac = await new_practitioner(client, rpps)
    user = await flow.user("practitioner", practitioner=prac)
    app = await flow.client(scope="launch/patient patient/*.rs user/*.rs openid fhirUser")
    launch = await flow.launch(
        browser, app, "launch/patient patient/*.rs user/*.rs openid fhirUser", user, patient=pid
    )
    body = (await flow.exchange(http, app, launch)).json()
    assert body["patient"] == pid
    assert body["need_patient_banner"] is True
    assert set(body["scope"].split()) == {"launch/patient", "patient/*.rs", "user/*.rs", "openid", "fhirUser"}
    claims = await flow.introspect(http, app, body["access_token"])
    assert claims["fhirUser"] == f"Practitioner/{prac}"
    assert claims["role"] == "practitioner"
    assert (claims["rpps"], claims["profession"], claims["specialty"]) == (rpps, "10", "SM54")


async def test_practitioner_must_name_an_existing_patient(
    flow: Flow, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    prac = await new_practitioner(client, new_rpps())
    user = await flow.user("practitioner", practitioner=prac)
    app = await flow.client(scope="launch/patient patient/*.rs")
    params = Flow.params(app, "launch/patient patient/*.rs", "x" * 43, "st")
    page = await flow.login(browser, await browser.get("auth/authorize", params=params), user)
    again = await flow.approve(browser, page, "no-such-patient")
    assert again.status_code == 200 and "There is no patient with this id" in again.text


async def test_ehr_launch_carries_patient(
    flow: Flow, browser: httpx.AsyncClient, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    prac = await new_practitioner(client, new_rpps())
    user = await flow.user("practitioner", practitioner=prac)
    ehr = await flow.client(scope="launch user/*.rs")
    app = await flow.client(scope="launch patient/*.rs openid fhirUser")
    made = await http.post("auth/launch", json={"patient": pid, "client_id": app}, headers=basic(ehr, SECRET))
    assert made.status_code == 201, made.text
    launch_id = made.json()["launch"]
    # The app is launched with that id; the patient comes from the launch, nothing to choose.
    launch = await flow.launch(browser, app, "launch patient/*.rs openid fhirUser", user, launch=launch_id)
    body = (await flow.exchange(http, app, launch)).json()
    assert body["patient"] == pid
    claims = await flow.introspect(http, app, body["access_token"])
    assert claims["patient"] == pid and claims["fhirUser"] == f"Practitioner/{prac}"


async def test_launch_creation_needs_a_confidential_client_with_launch(
    flow: Flow, http: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    plain = await flow.client(scope="patient/*.rs")
    assert (
        await http.post("auth/launch", json={"patient": pid}, headers=basic(plain, SECRET))
    ).status_code == 403
    ehr = await flow.client(scope="launch")
    wrong = await http.post("auth/launch", json={"patient": pid}, headers=basic(ehr, "wrong secret"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    missing = await http.post("auth/launch", json={"patient": "nobody"}, headers=basic(ehr, SECRET))
    assert missing.status_code == 400


async def test_authorize_by_post_and_denial(
    flow: Flow, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pid = await new_patient(client)
    user = await flow.user("patient", [pid])
    app = await flow.client(scope="patient/*.rs")
    page = await browser.post("auth/authorize", data=Flow.params(app, "patient/*.rs", "y" * 43, "st-post"))
    approval = await flow.login(browser, page, user)
    denied = await flow.approve(browser, approval, decision="deny")
    assert denied.status_code == 302
    assert "error=access_denied" in denied.headers["location"]
    assert "state=st-post" in denied.headers["location"]
    assert "code=" not in denied.headers["location"]
