"""Server-rendered HTML of the browser steps: login, approval (with the patient choice), errors.

No script, no external resource; every value from a request or the database goes through
``html.escape``. Forms post to fixed URLs and carry the pending request id and its CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

_STYLE = (
    "body{font-family:sans-serif;max-width:34em;margin:3em auto;padding:0 1em;color:#222}"
    "label{display:block;margin:.8em 0 .2em}input[type=text],input[type=password]{width:100%;padding:.4em}"
    "button{margin:1em .5em 0 0;padding:.5em 1.2em}.error{color:#a00}li{margin:.2em 0}"
)

# What the approval page says about the scopes people meet most.
_SCOPE_WORDS = {
    "openid": "confirm who you are to the application",
    "fhirUser": "tell the application which user record is yours",
    "profile": "share your user name",
    "launch": "use the patient opened in your software",
    "launch/patient": "work on one patient's record, chosen below",
    "offline_access": "keep access when you are not signed in",
    "online_access": "keep access while you stay signed in",
}
_ACTIONS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def _describe(scope: str) -> str:
    if scope in _SCOPE_WORDS:
        return _SCOPE_WORDS[scope]
    context, _, rest = scope.partition("/")
    rtype, _, perms = rest.partition(".")
    perms = perms.split("?", 1)[0]
    letters = {"read": "rs", "write": "cud", "*": "cruds"}.get(perms, perms)
    verbs = ", ".join(_ACTIONS[c] for c in letters if c in _ACTIONS)
    what = "all data" if rtype == "*" else rtype
    whose = {"patient": "of the patient in context", "user": "you may see", "system": ""}.get(context, "")
    return f"{verbs}: {what} {whose}".strip()


def page(title: str, body: str) -> str:
    """A complete HTML document (``body`` must already be escaped)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def _hidden(rid: str, csrf: str) -> str:
    return (
        f'<input type="hidden" name="rid" value="{escape(rid)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
    )


def error_page(message: str) -> str:
    """The page shown when the request cannot go back to the app (e.g. unregistered redirect URI)."""
    return page("Authorization error", f'<p class="error">{escape(message)}</p>')


def login_page(
    action: str,
    rid: str,
    csrf: str,
    client_id: str,
    error: str | None = None,
    upstream: tuple[str, str] | None = None,
) -> str:
    """The login form; ``upstream`` is (link, provider name) when federation is configured."""
    parts = [f"<p>The application <strong>{escape(client_id)}</strong> asks to access the DMP.</p>"]
    if error:
        parts.append(f'<p class="error">{escape(error)}</p>')
    parts.append(
        f'<form method="post" action="{escape(action)}">{_hidden(rid, csrf)}'
        '<label for="username">Username</label>'
        '<input type="text" id="username" name="username" autocomplete="username" required>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>'
    )
    if upstream:
        link, name = upstream
        parts.append(f'<p><a href="{escape(link)}">Sign in with {escape(name)}</a></p>')
    return page("Sign in", "".join(parts))


@dataclass(frozen=True)
class PatientChoice:
    """How the approval page settles the patient in context."""

    # "none": no patient asked; "fixed": ``fixed`` is it; "list": one of ``options``; "enter": an id.
    mode: str
    fixed: str | None = None
    options: tuple[str, ...] = ()


def approval_page(
    action: str,
    rid: str,
    csrf: str,
    client_id: str,
    username: str,
    scopes: list[str],
    choice: PatientChoice,
    error: str | None = None,
) -> str:
    """The approval form: the scopes the app will get, the patient, approve or deny."""
    items = "".join(f"<li><code>{escape(s)}</code> — {escape(_describe(s))}</li>" for s in scopes)
    parts = [
        f"<p>Signed in as <strong>{escape(username)}</strong>.</p>",
        f"<p>The application <strong>{escape(client_id)}</strong> will be able to:</p><ul>{items}</ul>",
    ]
    if error:
        parts.append(f'<p class="error">{escape(error)}</p>')
    form = [f'<form method="post" action="{escape(action)}">{_hidden(rid, csrf)}']
    if choice.mode == "fixed" and choice.fixed:
        form.append(f"<p>Patient: <code>{escape(choice.fixed)}</code></p>")
    elif choice.mode == "list":
        form.append("<fieldset><legend>Patient</legend>")
        for i, pid in enumerate(choice.options):
            checked = " checked" if i == 0 else ""
            form.append(
                f'<label><input type="radio" name="patient" value="{escape(pid)}"{checked}> '
                f"<code>{escape(pid)}</code></label>"
            )
        form.append("</fieldset>")
    elif choice.mode == "enter":
        form.append(
            '<label for="patient">Patient id</label><input type="text" id="patient" name="patient" required>'
        )
    form.append(
        '<button type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny" formnovalidate>Deny</button></form>'
    )
    parts.append("".join(form))
    return page("Approve access", "".join(parts))
