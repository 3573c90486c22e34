"""Search criteria (``name=value&…``) compiled to MongoDB filters over the index fields only.

Used by conditional create/update/delete and type search. An unknown or unsupported parameter is a 400,
never a silently broader match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import token
from fhir_server.search.registry import supported_params

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Parameters that shape results rather than select them.
RESULT_PARAMS = {"_count", "_sort", "_summary", "_elements", "_format", "_pretty", "_total", "_cursor"}


def split_or(value: str) -> list[str]:
    """Split a parameter value on unescaped commas (OR)."""
    parts, cur, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            cur.append(value[i : i + 2])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def compile_criteria(rtype: str, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """AND of every (name, value) pair; each value an OR of its comma-separated parts."""
    supported = supported_params(rtype)
    clauses: list[dict[str, Any]] = []
    for name, value in params:
        if name in RESULT_PARAMS:
            continue
        code, _, modifier = name.partition(":")
        if code not in supported:
            raise BadRequest(f"search parameter '{name}' is not supported for {rtype}", expression=name)
        if modifier:
            raise BadRequest(f"modifier ':{modifier}' is not supported on '{code}'", expression=name)
        alternatives = split_or(value)
        if code == "_id":
            ors = []
            for v in alternatives:
                if not _ID.match(v):
                    raise BadRequest(f"'{v}' is not a valid resource id", expression=name)
                ors.append({"_id": v})
        else:
            p = supported[code]
            ors = [token.compile(p.field, v, name) for v in alternatives]
        clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
