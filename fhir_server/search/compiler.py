"""Compile parsed search clauses into a MongoDB filter over the index fields only.

Chained parameters and ``_has`` become sub-queries run through ``lookup`` (storage), each restricted by
``restrict(type)`` so that a caller cannot probe, through a chain, resources it may not see. A sub-query
that matches more than ``max_ids`` resources is refused (400 too-costly) rather than silently cut.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import composite, reference
from fhir_server.search.registry import SPECIAL, SearchParam
from fhir_server.search.request import KIND_MODULES, Clause, HasClause

Filter = dict[str, Any]
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# (type, filter, field, limit) -> the values of ``field`` over live matches (``_id`` or an index field).
Lookup = Callable[[str, Filter, str, int], Awaitable[list[Any]]]
Restrict = Callable[[str], Filter]


def no_restriction(rtype: str) -> Filter:
    """The restriction when no access policy applies."""
    return {}


def _and(parts: Sequence[Filter]) -> Filter:
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": list(parts)}


def _or(parts: Sequence[Filter]) -> Filter:
    return parts[0] if len(parts) == 1 else {"$or": list(parts)}


@dataclass
class Compiler:
    """Turns clauses into filters; one instance per request."""

    base: str
    lookup: Lookup
    restrict: Restrict = no_restriction
    max_ids: int = 10_000

    def value_condition(self, param: SearchParam, modifier: str, value: str, raw: str) -> Filter:
        """The condition for one value of a (non-chained) parameter."""
        if param.code in SPECIAL:
            if modifier:
                raise BadRequest(f"'{raw}': _id takes no modifier", expression=raw)
            if not _ID.match(value):
                raise BadRequest(f"'{value}' is not a valid resource id", expression=raw)
            return {"_id": value}
        field = f"idx.{param.code}"
        if modifier == "missing":
            return {field: {"$exists": value == "false"}}
        if param.kind == "reference":
            return reference.compile_reference(field, value, modifier, raw, param.targets, self.base)
        if param.kind == "composite":
            return composite.compile(field, value, modifier, raw, param.components, self.base)
        return dict(KIND_MODULES[param.kind].compile(field, value, modifier, raw, param.single))

    async def compile(self, clauses: Sequence[Clause | HasClause]) -> Filter:
        """AND of every clause."""
        return _and([await self._clause(c) for c in clauses])

    async def _clause(self, c: Clause | HasClause) -> Filter:
        if isinstance(c, HasClause):
            return await self._has(c)
        if not c.chain:
            return _or([self.value_condition(c.param, c.modifier, v, c.raw) for v in c.values])
        # Innermost first: the last chained type's matches, then back along the chain.
        target_type = c.chain[-1][0]
        inner = _or([self.value_condition(c.param, c.modifier, v, c.raw) for v in c.values])
        refs = [f"{target_type}/{i}" for i in await self._ids(target_type, inner, "_id", c.raw)]
        for _, ref_param in reversed(c.chain[1:]):
            owner = ref_param.rtype
            cond = {f"idx.{ref_param.code}": {"$in": refs}}
            refs = [f"{owner}/{i}" for i in await self._ids(owner, cond, "_id", c.raw)]
        return {f"idx.{c.chain[0][1].code}": {"$in": refs}}

    async def _has(self, c: HasClause) -> Filter:
        inner = await self._clause(c.inner)
        values = await self._ids(c.source, inner, f"idx.{c.ref.code}", c.raw)
        prefix = c.target + "/"
        ids = sorted({v[len(prefix) :] for v in values if isinstance(v, str) and v.startswith(prefix)})
        return {"_id": {"$in": ids}}

    async def _ids(self, rtype: str, filt: Filter, field: str, raw: str) -> list[Any]:
        found = await self.lookup(rtype, _and([filt, self.restrict(rtype)]), field, self.max_ids + 1)
        if len(found) > self.max_ids:
            raise BadRequest(
                f"'{raw}' matches more than {self.max_ids} {rtype} resources; narrow the search",
                code="too-costly",
                expression=raw,
            )
        return found
