"""Which of the requested scopes a token may carry: requested ∩ the client's registered scopes ∩ what
the user's role (or the grant) allows.

A requested clinical scope is kept as written when one registered scope of the same context covers it
(same or ``*`` type, a superset of its permissions, and no query or the same query): a query part of the
request stays when the registered scope covers the type without restriction. When no registered scope
covers it whole, the overlap is granted instead (``patient/*.rs`` requested, ``patient/Observation.rs``
registered → ``patient/Observation.rs``), written in the request's syntax (v1 when it was v1 and the
permissions have a v1 name, else v2). Other scopes (``openid``, ``launch/patient``…) are kept only when
registered verbatim. Clinical scopes are parsed by :mod:`fhir_server.auth.scopes`, the resource server's
reader, so both sides agree on the syntax.
"""

from __future__ import annotations

from fhir_server.auth.scopes import Scope, parse_scopes
from fhir_server.auth.smart import NON_CLINICAL_SCOPES

_V2_ORDER = "cruds"
_V1_NAMES = {frozenset("rs"): "read", frozenset("cud"): "write", frozenset("cruds"): "*"}

# Which scope contexts each kind of subject may receive.
USER_CONTEXTS = {
    "patient": {"patient"},
    "representative": {"patient"},
    "practitioner": {"patient", "user"},
    "admin": {"patient", "user"},
}
BACKEND_CONTEXTS = {"system"}


def _clinical(text: str) -> Scope | None:
    parsed = parse_scopes(text)
    return parsed[0] if parsed else None


def _is_v1(text: str) -> bool:
    return text.rsplit(".", 1)[-1].split("?", 1)[0] in ("read", "write", "*")


def _format(scope: Scope, v1: bool) -> str:
    name = _V1_NAMES.get(scope.permissions) if v1 and scope.query is None else None
    perms = name or "".join(c for c in _V2_ORDER if c in scope.permissions)
    text = f"{scope.context}/{scope.rtype}.{perms}"
    return f"{text}?{scope.query}" if scope.query else text


def _covers(given: Scope, wanted: Scope) -> bool:
    return (
        given.context == wanted.context
        and given.rtype in ("*", wanted.rtype)
        and wanted.permissions <= given.permissions
        and (given.query is None or given.query == wanted.query)
    )


def _overlap(given: Scope, wanted: Scope) -> Scope | None:
    """The part of ``wanted`` that ``given`` allows, when ``given`` does not cover it whole."""
    if given.context != wanted.context or (given.rtype not in ("*", wanted.rtype) and wanted.rtype != "*"):
        return None
    if given.query is not None and wanted.query not in (None, given.query):
        return None
    perms = given.permissions & wanted.permissions
    if not perms:
        return None
    rtype = wanted.rtype if given.rtype == "*" else given.rtype
    return Scope(given.context, rtype, frozenset(perms), given.query or wanted.query)


def allowed_scopes(requested: str, registered: str, contexts: set[str]) -> list[str]:
    """The scopes of ``requested`` (space-separated) that ``registered`` covers, limited to clinical
    scopes of ``contexts``; non-clinical scopes are kept when registered and ``user``/``patient`` contexts
    are allowed (a backend client gets clinical ``system/`` scopes only)."""
    reg_words = registered.split()
    reg_clinical = [s for s in (_clinical(w) for w in reg_words) if s is not None]
    interactive = bool(contexts - BACKEND_CONTEXTS)
    granted: list[str] = []
    for word in dict.fromkeys(requested.split()):
        wanted = _clinical(word)
        if wanted is None:
            if interactive and word in NON_CLINICAL_SCOPES and word in reg_words:
                granted.append(word)
            continue
        if wanted.context not in contexts:
            continue
        if any(_covers(g, wanted) for g in reg_clinical):
            granted.append(word)
            continue
        for given in reg_clinical:
            part = _overlap(given, wanted)
            if part is not None:
                granted.append(_format(part, _is_v1(word)))
    return list(dict.fromkeys(granted))
