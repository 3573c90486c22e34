"""SMART clinical scopes, v1 and v2 syntax, as the resource server reads them from a token.

v1: ``patient/Observation.read``, ``user/*.write``, ``system/*.*``; v2: ``patient/*.rs``,
``user/Patient.cruds``, and v2 scopes narrowed by search parameters,
``patient/DocumentReference.rs?type=http://loinc.org|11488-4``. A v1 ``read`` is v2 ``rs``, ``write`` is
``cud``, ``*`` is ``cruds``. Scopes that are not clinical (``openid``, ``launch``…) are not returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Interactions, as the letters of SMART v2 permissions.
CREATE, READ, UPDATE, DELETE, SEARCH = "c", "r", "u", "d", "s"
_V2_ORDER = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(?:\?(.*))?")


@dataclass(frozen=True)
class Scope:
    """One clinical scope: who it speaks for, the type (``*`` for all), the permitted interactions,
    and for v2 scopes an optional search query that narrows what it grants."""

    context: str
    rtype: str
    permissions: frozenset[str]
    query: str | None = None

    def grants(self, rtype: str, action: str) -> bool:
        return action in self.permissions and self.rtype in ("*", rtype)


def _permissions(text: str) -> str | None:
    if text in _V1:
        return _V1[text]
    # v2: a non-empty subsequence of c r u d s, in that order, each at most once.
    pos = -1
    for ch in text:
        i = _V2_ORDER.find(ch)
        if i <= pos:
            return None
        pos = i
    return text or None


def parse_scope(text: str) -> Scope | None:
    """The clinical scope ``text`` denotes, or None (not clinical, or malformed)."""
    m = _SCOPE.fullmatch(text)
    if m is None:
        return None
    context, rtype, perms, query = m.groups()
    letters = _permissions(perms)
    if letters is None or (query is not None and perms in _V1):
        # v1 scopes have no query part; a malformed permission grants nothing.
        return None
    return Scope(context, rtype, frozenset(letters), query or None)


def parse_scopes(text: str) -> list[Scope]:
    """The clinical scopes of a space-separated scope string."""
    return [s for s in (parse_scope(t) for t in text.split()) if s is not None]
