"""Token parameters: codes, Codings, CodeableConcepts, Identifiers, ContactPoints and booleans.

Main-field values are exact strings, so a query can never match more than the literal it names:
``system|code`` for a coded value with a system, ``|code`` for one without, and the bare ``code``
(primitives and booleans store only the bare value). ``system|`` searches become an anchored, escaped
prefix match on ``system|``. Matching is case-sensitive.

Side fields:

- ``text``: folded CodeableConcept.text, Coding.display and Identifier.type.text (with their word tails,
  as string parameters store them), for ``:text``, a string search: starts-with, case/accent-insensitive;
- ``of-type``: ``typeSystem|typeCode|value`` per Identifier.type coding, for ``:of-type``.

``:not`` is the set negation: no stored value matches, which includes resources with no value at all.
``:in``, ``:not-in``, ``:above`` and ``:below`` need a terminology server and are not supported.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import string
from fhir_server.search.kinds._syntax import check, shape, split_bars

MODIFIERS = frozenset({"not", "text", "of-type"})


def pair(system: Any, code: Any) -> list[str]:
    """``system|code`` (``|code`` without a system) and the bare ``code``; nothing without a code."""
    if not isinstance(code, str) or not code:
        return []
    sys_part = system if isinstance(system, str) else ""
    return [f"{sys_part}|{code}", code]


def _codings(concept: dict[str, Any]) -> list[dict[str, Any]]:
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _collect(v: Any, codes: list[str], texts: list[str], types: list[str]) -> None:
    if isinstance(v, bool):
        codes.append("true" if v else "false")
    elif isinstance(v, str):
        codes.append(v)
    elif isinstance(v, dict):
        texts.extend(t for t in (v.get("text"), v.get("display")) if isinstance(t, str))
        if "coding" in v:
            for c in _codings(v):
                codes.extend(pair(c.get("system"), c.get("code")))
                if isinstance(c.get("display"), str):
                    texts.append(c["display"])
        elif "value" in v:
            # Identifier and ContactPoint both carry (system, value).
            codes.extend(pair(v.get("system"), v.get("value")))
            kind = v.get("type")
            if isinstance(kind, dict):
                if isinstance(kind.get("text"), str):
                    texts.append(kind["text"])
                if isinstance(v.get("value"), str):
                    types.extend(
                        f"{c.get('system') or ''}|{c['code']}|{v['value']}"
                        for c in _codings(kind)
                        if isinstance(c.get("code"), str)
                    )
        elif "code" in v:
            codes.extend(pair(v.get("system"), v.get("code")))


def extract(values: list[Any], single: bool) -> dict[str, Any]:
    """The main field and the ``text`` / ``of-type`` side fields."""
    codes: list[str] = []
    texts: list[str] = []
    types: list[str] = []
    for v in values:
        _collect(v, codes, texts, types)
    folded = {f for t in texts if t.strip() for f in string.folded_forms(t)}
    fields = {"": sorted(set(codes)), "text": sorted(folded), "of-type": sorted(set(types))}
    return {k: shape(vs, single) for k, vs in fields.items() if vs}


def sort_key(values: list[Any]) -> Any:
    """The smallest bare code."""
    codes: list[str] = []
    for v in values:
        _collect(v, codes, [], [])
    return min((c for c in codes if "|" not in c), default=None)


def match(value: str, name: str) -> dict[str, Any] | str:
    """The condition on a token field for one ``[system|]code`` value: a literal, or an anchored regex."""
    parts = split_bars(value)
    if len(parts) == 1:
        return parts[0]
    if len(parts) != 2:
        raise BadRequest(f"'{value}' has more than one unescaped '|' for '{name}'", expression=name)
    system, code = parts
    if code:
        return f"{system}|{code}"
    if not system:
        raise BadRequest(f"'|' alone is not a token for '{name}'", expression=name)
    return {"$regex": "^" + re.escape(system + "|")}


def compile(field: str, value: str, modifier: str, name: str, single: bool) -> dict[str, Any]:
    """The MongoDB condition for one token value."""
    check(value, name)
    if modifier == "":
        return {field: match(value, name)}
    if modifier == "not":
        cond = match(value, name)
        return {field: {"$not": cond} if isinstance(cond, dict) else {"$ne": cond}}
    if modifier == "text":
        return string.compile(f"{field}:text", value, "", name, single)
    if modifier == "of-type":
        parts = split_bars(value)
        if len(parts) != 3 or not all(parts):
            raise BadRequest(f"':of-type' on '{name}' takes system|code|value", expression=name)
        return {f"{field}:of-type": "|".join(parts)}
    raise BadRequest(f"modifier ':{modifier}' is not supported on '{name}'", expression=name)
