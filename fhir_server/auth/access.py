"""What one request may touch, compiled once from its token into MongoDB filters (DESIGN.md).

For each resource type and interaction (the SMART v2 letters c r u d s) the token's scopes give a
filter: the union over the scopes that grant the interaction on that type of (context ∩ query), where

- a ``patient/`` scope's context is the token's patient compartment (``comp`` holds the patient id);
  types outside the Patient compartment are reachable only when they are shared reference data
  (Practitioner, Organization…), never e.g. a Binary of another patient;
- a ``user/`` or ``system/`` scope's context is everything (the DMP policy narrows ``user/`` later);
- a v2 query (``patient/DocumentReference.rs?type=…``) is compiled by the search compiler, so it narrows
  exactly as the same search would.

``None`` means unrestricted; a type no scope grants is refused (403) before any query runs. Storage adds
the filter to every query, so nothing outside it is read, returned, counted or written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fhir_server.auth.audit import Audit
from fhir_server.auth.policy import DENY, DOCUMENT_TYPES, SHARED_TYPES, Policy, both, in_compartment
from fhir_server.auth.scopes import READ, SEARCH, Scope, parse_scopes
from fhir_server.fhir.errors import BadRequest, Forbidden
from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.search.compiler import Filter
from fhir_server.search.engine import SearchEngine
from fhir_server.search.request import parse_search

_ACTION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_WRITES = frozenset("cud")


@dataclass
class Access:
    """The access of one request. ``Access.full()`` when authorization is off."""

    claims: dict[str, Any] = field(default_factory=dict)
    scopes: list[Scope] = field(default_factory=list)
    unrestricted: bool = False
    # The DMP rules (fhir_server.auth.policy), intersected with every filter; None for operators.
    policy: Policy | None = None
    # Where this request's traces go (None: not traced, e.g. internal work).
    audit: Audit | None = None
    # (scope index, type) -> compiled query filter of a query-narrowed scope.
    _queries: dict[tuple[int, str], Filter] = field(default_factory=dict)

    @classmethod
    def full(cls) -> Access:
        return cls(unrestricted=True)

    @classmethod
    async def from_claims(
        cls, claims: dict[str, Any], engine: SearchEngine, policy: Policy | None = None
    ) -> Access:
        """The access a verified token grants under ``policy``; v2 queries are compiled now, once."""
        scopes = parse_scopes(str(claims.get("scope", "")))
        access = cls(claims=claims, scopes=scopes, policy=policy)
        for i, scope in enumerate(scopes):
            if scope.query is None:
                continue
            types = SERVED_TYPES if scope.rtype == "*" else (scope.rtype,)
            pairs = parse_qsl(scope.query, keep_blank_values=True)
            for rtype in types:
                try:
                    req = parse_search(rtype, pairs, default_count=1, max_count=1, strict=True)
                except BadRequest:
                    # A query a type cannot answer grants nothing on that type.
                    continue
                access._queries[(i, rtype)] = await engine.filter_for(req)
        return access

    @property
    def patient(self) -> str | None:
        """The patient of the launch context."""
        value = self.claims.get("patient")
        return value if isinstance(value, str) else None

    def _scope_filter(self, i: int, scope: Scope, rtype: str) -> Filter | None:
        """What ``scope`` lets through on ``rtype``: None for everything, DENY for nothing."""
        parts: list[Filter] = []
        if scope.context == "patient":
            if self.patient is None:
                return DENY
            # A Binary carries the compartment of the document it is the content of.
            if in_compartment(rtype) or rtype in DOCUMENT_TYPES:
                parts.append({"comp": self.patient})
            elif rtype not in SHARED_TYPES:
                return DENY
        if scope.query is not None:
            query = self._queries.get((i, rtype))
            if query is None:
                return DENY
            parts.append(query)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}

    def filter(self, rtype: str, actions: str) -> Filter | None:
        """The filter of what this request may do with ``rtype`` by any of ``actions`` (scopes ∩ DMP
        policy); None when unrestricted, DENY when nothing."""
        granted = self._granted(rtype, actions)
        if self.policy is None or granted is DENY:
            return granted
        return both(granted, self.policy.filter(rtype, write=bool(_WRITES & set(actions))))

    def _granted(self, rtype: str, actions: str) -> Filter | None:
        """What the scopes alone let through."""
        if self.unrestricted:
            return None
        found: list[Filter] = []
        for i, scope in enumerate(self.scopes):
            if any(scope.grants(rtype, a) for a in actions):
                f = self._scope_filter(i, scope, rtype)
                if f is None:
                    return None
                if f is not DENY and f not in found:
                    found.append(f)
        if not found:
            return DENY
        return found[0] if len(found) == 1 else {"$or": found}

    def allows(self, rtype: str, action: str) -> bool:
        """Whether some scope grants ``action`` on ``rtype`` (before any filter)."""
        return self.unrestricted or any(s.grants(rtype, action) for s in self.scopes)

    def require(self, rtype: str, action: str) -> Filter | None:
        """The filter for ``action`` on ``rtype``; 403 when no scope grants it at all."""
        f = self.filter(rtype, action)
        if f is DENY:
            raise Forbidden(
                f"the access token does not allow {_ACTION_NAMES[action]} on {rtype}",
                code="forbidden",
            )
        return f

    def restrict(self, rtype: str) -> Filter:
        """What may be seen of ``rtype`` (search matches, includes, chains, ``_has``): the search
        engine's restriction hook."""
        f = self.filter(rtype, READ + SEARCH)
        return {} if f is None else f

    def searchable(self, types: Iterable[str]) -> list[str]:
        """Those of ``types`` this request may search."""
        return [t for t in types if self.allows(t, SEARCH) and self.filter(t, SEARCH) is not DENY]

    def history_filter(self, types: Iterable[str], skip_narrowed: bool = False) -> Filter | None:
        """The filter over the history collection for these types: per type, the patient compartment
        when a patient scope is what grants it, and the DMP policy (whose filters look only at what
        past versions keep: ``comp`` and ``pol``). Query-narrowed scopes cannot be applied to past
        versions (their index values are not kept), so they do not open history: a 403, or with
        ``skip_narrowed`` (system history) the type is left out."""
        if self.unrestricted:
            return None
        branches: list[Filter] = []
        for rtype in types:
            f = self._granted(rtype, READ)
            if f is DENY:
                continue
            if f is not None and f != {"comp": self.patient}:
                if skip_narrowed:
                    continue
                raise Forbidden(
                    f"the history of {rtype} is not available under a query-narrowed scope", code="forbidden"
                )
            if self.policy is not None:
                f = both(f, self.policy.filter(rtype, write=False))
                if f is DENY:
                    continue
            branches.append({"t": rtype} if f is None else {"$and": [{"t": rtype}, f]})
        if not branches:
            return DENY
        return branches[0] if len(branches) == 1 else {"$or": branches}
