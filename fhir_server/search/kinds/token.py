"""Token parameters: codes, identifiers, booleans. ``extract`` (write time) and ``compile`` (query time).

Index values are exact strings, so a query can never match more than the literal it names:

- ``system|code`` for a coded value with a system, ``|code`` for one without, and the bare ``code``;
- ``system|`` searches become an anchored, escaped prefix match on ``system|``.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.fhir.errors import BadRequest


def _pair(system: Any, code: Any) -> list[str]:
    if not isinstance(code, str) or not code:
        return []
    sys_part = system if isinstance(system, str) else ""
    return [f"{sys_part}|{code}", code]


def extract(values: list[Any]) -> list[str]:
    """Index strings for the values a token expression yields."""
    out: list[str] = []
    for v in values:
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            if "coding" in v:
                for c in v["coding"]:
                    out.extend(_pair(c.get("system"), c.get("code")))
            elif "value" in v:
                # Identifier and ContactPoint both carry (system, value).
                out.extend(_pair(v.get("system"), v.get("value")))
            elif "code" in v:
                out.extend(_pair(v.get("system"), v.get("code")))
    return sorted(set(out))


def compile(field: str, value: str, name: str) -> dict[str, Any]:
    """The MongoDB condition for one token value (already split on unescaped commas)."""
    if value == "":
        raise BadRequest(f"empty value for search parameter '{name}'", expression=name)
    system, bar, code = _split_bar(value)
    if not bar:
        return {field: code}
    if code == "":
        if system == "":
            raise BadRequest(f"'|' alone is not a token for '{name}'", expression=name)
        return {field: {"$regex": "^" + re.escape(system + "|")}}
    return {field: f"{system}|{code}"}


def _split_bar(value: str) -> tuple[str, bool, str]:
    """Split ``system|code`` on the first unescaped bar and unescape both sides."""
    i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == "|":
            return unescape(value[:i]), True, unescape(value[i + 1 :])
        i += 1
    return "", False, unescape(value)


def unescape(value: str) -> str:
    """Undo FHIR search escaping (``\\,`` ``\\|`` ``\\$`` ``\\\\``)."""
    return re.sub(r"\\([\\,|$])", r"\1", value)
