"""The browser side of the authorization endpoint: validate, log in, approve, redirect with a code.

1. ``GET|POST /auth/authorize``: Authlib validates the client, redirect URI, response type and scopes,
   and our grant adds PKCE S256, ``aud`` and ``launch`` (:mod:`fhir_server.auth.grants`). An error goes
   back to the app's redirect URI only once that URI is known to be registered; otherwise it is an HTML
   page with status 400. A valid request is kept in MongoDB (``auth_requests``) under a random id,
   bound to the browser's cookie, with a CSRF token that the forms carry back.
2. The login page, unless the cookie already belongs to a live login session (``session_ttl``). A
   successful login (password, or the upstream provider) opens a session under a new cookie value.
3. The approval page: the scopes the app will get (the client's ∩ the role's), and the patient when
   ``launch/patient`` asks for one (a patient user: themselves; a representative: one of the patients
   they represent; a professional: an id they type, which must exist). Approving consumes the pending
   request and Authlib redirects to the app with the code and ``state``.

The cookie is HttpOnly, SameSite=Lax, limited to the ``/auth`` path, Secure behind https.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.responses import HTMLResponse, RedirectResponse, Response

from fhir_server.auth.accounts import User
from fhir_server.auth.claims import patient_exists, practitioner_by_rpps
from fhir_server.auth.grants import Approval
from fhir_server.auth.pages import PatientChoice, approval_page, error_page, login_page
from fhir_server.auth.scope_match import USER_CONTEXTS, allowed_scopes
from fhir_server.auth.server import FormRequest, SmartServer
from fhir_server.auth.store import LaunchContext
from fhir_server.auth.upstream import Upstream, UpstreamError

COOKIE = "fhir_auth"
_EXPIRED = "This sign-in page has expired or was already used; start again from the application."


class AuthorizeFlow:
    """The pages and redirects of one authorization request."""

    def __init__(self, server: SmartServer, upstream: Upstream | None) -> None:
        self.server = server
        self.settings = server.settings
        self.store = server.store
        self.urls = server.urls
        self.upstream = upstream
        base = urlsplit(self.settings.fhir_base)
        self._cookie_path = base.path.rstrip("/") + "/auth"
        self._secure = base.scheme == "https"

    # Responses ------------------------------------------------------------------------------------

    def _html(self, body: str, status: int = 200, cookie: str | None = None) -> Response:
        resp = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
        # The pages must not be framed (clickjacking of the approve button).
        resp.headers["X-Frame-Options"] = "DENY"
        # No form-action directive: browsers apply it to the redirect after the form, i.e. to any app.
        resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        if cookie:
            resp.set_cookie(
                COOKIE,
                cookie,
                max_age=self.settings.session_ttl,
                path=self._cookie_path,
                httponly=True,
                samesite="lax",
                secure=self._secure,
            )
        return resp

    def _oauth_result(self, status: int, headers: list[tuple[str, str]], body: Any) -> Response:
        location = dict(headers).get("Location")
        if status == 302 and location:
            return RedirectResponse(location, status_code=302)
        description = body.get("error_description") if isinstance(body, dict) else None
        return self._html(error_page(str(description or "The authorization request is not valid.")), 400)

    def _error(self, error: OAuth2Error) -> Response:
        # Authlib fills redirect_uri only once it checked that the URI is registered for the client.
        status, body, headers = error()
        return self._oauth_result(status, headers, body)

    # Validation -----------------------------------------------------------------------------------

    async def _validate(self, pairs: list[tuple[str, str]]) -> tuple[Any, Response | None]:
        request = FormRequest("GET", self.urls["authorize"], {}, pairs)
        try:
            grant = await self.server.call(self.server.get_consent_grant, request, None)
        except OAuth2Error as error:
            return None, self._error(error)
        return grant, None

    async def _user(self, cookie: str | None) -> tuple[User | None, dict[str, Any] | None]:
        session = await self.store.session(cookie)
        if session is None:
            return None, None
        user = await self.server.users.get(session["user_id"])
        if user is None or user.disabled:
            return None, None
        return user, session

    # Step 1 ---------------------------------------------------------------------------------------

    async def start(self, pairs: list[tuple[str, str]], cookie: str | None) -> Response:
        """Validate an authorization request, then show the login or the approval page."""
        grant, failure = await self._validate(pairs)
        if failure:
            return failure
        browser = cookie or secrets.token_urlsafe(32)
        pending = await self.store.save_request(_pairs_doc(pairs), browser)
        user, _ = await self._user(cookie)
        prompt = (grant.request.payload.data.get("prompt") or "").split()
        if user is None or "login" in prompt:
            return self._login(pending, None, None if cookie == browser else browser)
        return await self._approval(pending, grant, user, None, None)

    def _login(self, pending: dict[str, Any], error: str | None, cookie: str | None) -> Response:
        upstream = None
        if self.upstream:
            upstream = (f"{self.urls['upstream_login']}?rid={pending['_id']}", self.upstream.name)
        client_id = dict(pending["params"]).get("client_id", "")
        body = login_page(self.urls["login"], pending["_id"], pending["csrf"], client_id, error, upstream)
        return self._html(body, cookie=cookie)

    # Step 2 ---------------------------------------------------------------------------------------

    async def _checked(self, form: dict[str, str], cookie: str | None) -> dict[str, Any] | None:
        pending = await self.store.pending(form.get("rid", ""), cookie)
        if pending is None or not secrets.compare_digest(form.get("csrf", ""), pending["csrf"]):
            return None
        return pending

    async def login(self, form: dict[str, str], cookie: str | None) -> Response:
        """Check the username and password posted by the login form."""
        pending = await self._checked(form, cookie)
        if pending is None:
            return self._html(error_page(_EXPIRED), 400)
        user = await self.server.users.by_username(form.get("username", ""))
        password = form.get("password", "")
        ok = await asyncio.to_thread(_password_ok, user, password)
        if not ok or user is None:
            return self._login(pending, "Unknown username or wrong password.", None)
        return await self._logged_in(pending, user)

    async def _logged_in(self, pending: dict[str, Any], user: User) -> Response:
        # A new cookie value at each login: a cookie planted before login is worth nothing after.
        cookie = await self.store.open_session(user.id, self.settings.session_ttl)
        await self.store.rebind_request(pending["_id"], cookie)
        grant, failure = await self._validate(_doc_pairs(pending["params"]))
        if failure:
            return failure
        return await self._approval(pending, grant, user, None, cookie)

    # Step 3 ---------------------------------------------------------------------------------------

    def _scopes(self, grant: Any, user: User) -> list[str]:
        return allowed_scopes(grant.request.scope, grant.request.scope, USER_CONTEXTS[user.role])

    def _choice(self, grant: Any, user: User, scopes: list[str]) -> PatientChoice:
        launch: LaunchContext | None = grant.request.launch_context
        if launch is not None:
            return PatientChoice("fixed", launch.patient)
        if user.role == "patient":
            return PatientChoice("fixed", user.patients[0])
        if "launch/patient" not in scopes:
            return PatientChoice("none")
        if user.role == "representative":
            return PatientChoice("list", options=tuple(user.patients))
        return PatientChoice("enter")

    async def _approval(
        self, pending: dict[str, Any], grant: Any, user: User, error: str | None, cookie: str | None
    ) -> Response:
        scopes = self._scopes(grant, user)
        body = approval_page(
            self.urls["approve"],
            pending["_id"],
            pending["csrf"],
            grant.request.client.client_id,
            user.username,
            scopes,
            self._choice(grant, user, scopes),
            error,
        )
        return self._html(body, cookie=cookie)

    async def approve(self, form: dict[str, str], cookie: str | None) -> Response:
        """Apply the user's decision: redirect to the app with a code, or with access_denied."""
        pending = await self._checked(form, cookie)
        user, session = await self._user(cookie)
        if pending is None or user is None or session is None:
            return self._html(error_page(_EXPIRED), 400)
        pairs = _doc_pairs(pending["params"])
        grant, failure = await self._validate(pairs)
        if failure:
            return failure
        approval: Approval | None = None
        if form.get("decision") == "approve":
            choice = self._choice(grant, user, self._scopes(grant, user))
            patient, problem = await self._patient(choice, user, form.get("patient", "").strip())
            if problem:
                return await self._approval(pending, grant, user, problem, None)
            banner = patient is not None and user.role in ("practitioner", "admin")
            encounter = grant.request.launch_context.encounter if grant.request.launch_context else None
            context = LaunchContext(patient, encounter, banner)
            approval = Approval(user, context, session["_id"], int(session["auth_time"]))
        if not await self.store.finish_request(pending["_id"]):
            return self._html(error_page(_EXPIRED), 400)
        # Authlib validates the request once more, then issues the code (or redirects with the denial).
        status, body, headers = await self.server.call(
            lambda: self.server.create_authorization_response(grant.request, grant_user=approval, grant=grant)
        )
        return self._oauth_result(status, headers, body)

    async def _patient(self, choice: PatientChoice, user: User, given: str) -> tuple[str | None, str | None]:
        """The patient in context and, when the choice is not acceptable, why."""
        if choice.mode == "none":
            return None, None
        if choice.mode == "fixed":
            if user.role in ("patient", "representative") and choice.fixed not in user.patients:
                return None, "This launch concerns a patient you do not represent."
            return choice.fixed, None
        if choice.mode == "list":
            return (given, None) if given in choice.options else (None, "Choose one of the patients listed.")
        if not given or not await patient_exists(self.server.db, given):
            return None, "There is no patient with this id."
        return given, None

    # Upstream provider ----------------------------------------------------------------------------

    async def upstream_start(self, rid: str, cookie: str | None) -> Response:
        """Send the browser to the upstream provider for a pending request."""
        pending = await self.store.pending(rid, cookie)
        if pending is None or self.upstream is None:
            return self._html(error_page(_EXPIRED), 400)
        try:
            url, kept = await self.upstream.start()
        except UpstreamError as exc:
            return self._login(pending, str(exc), None)
        await self.store.set_upstream(pending["_id"], kept)
        return RedirectResponse(url, status_code=302)

    async def upstream_callback(self, params: dict[str, str], cookie: str | None) -> Response:
        """Back from the upstream provider: match the professional by RPPS, then the approval page."""
        pending = await self.store.pending_by_upstream_state(params.get("state", ""), cookie)
        if pending is None or self.upstream is None:
            return self._html(error_page(_EXPIRED), 400)
        # The state is single-use: a replayed callback finds nothing.
        await self.store.set_upstream(pending["_id"], {})
        if "code" not in params:
            return self._login(pending, f"{self.upstream.name} did not sign you in.", None)
        try:
            identity = await self.upstream.finish(params["code"], pending["upstream"])
        except UpstreamError as exc:
            return self._login(pending, str(exc), None)
        user = await self._professional(identity)
        if user is None:
            return self._login(pending, "No active practitioner account matches your RPPS number here.", None)
        return await self._logged_in(pending, user)

    async def _professional(self, identity: dict[str, Any]) -> User | None:
        """The local user of the Practitioner with this RPPS, created on first login."""
        practitioner = await practitioner_by_rpps(self.server.db, identity["rpps"])
        if practitioner is None:
            return None
        user = await self.server.users.by_practitioner(practitioner)
        if user is not None:
            return None if user.disabled else user
        upstream = {"iss": identity["iss"], "sub": identity["sub"]}
        name = f"rpps:{identity['rpps']}"
        return await self.server.users.add(
            name, None, "practitioner", practitioner=practitioner, upstream=upstream
        )


def _password_ok(user: User | None, password: str) -> bool:
    if user is None:
        # Same cost as a real check, so response time does not tell which usernames exist.
        User("", "", "patient").check_password(password)
        return False
    return not user.disabled and user.check_password(password)


def _pairs_doc(pairs: list[tuple[str, str]]) -> list[list[str]]:
    return [[k, v] for k, v in pairs]


def _doc_pairs(doc: list[list[str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in doc]
