"""Parse a search query string into a frozen :class:`SearchRequest` (no database, no HTTP).

Grammar handled here (FHIR R4 search): ``name[:modifier][.chain…]=v1,v2`` (commas are OR, repeated
parameters are AND), ``_has:Type:ref:…=v`` (nested), and the result parameters ``_count``, ``_sort``,
``_include``/``_revinclude`` (``:iterate``, ``*``), ``_total``, ``_summary``, ``_elements``. Unknown
parameters are dropped (and left out of the ``self`` link) unless the client asked for
``Prefer: handling=strict``; malformed values are always a 400 naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from fhir_server.fhir.errors import BadRequest
from fhir_server.fhir.registry import is_served
from fhir_server.search.kinds import composite, date, number, quantity, reference, string, token, uri
from fhir_server.search.registry import SearchParam, supported_params

KIND_MODULES = {
    "token": token,
    "string": string,
    "date": date,
    "reference": reference,
    "uri": uri,
    "number": number,
    "quantity": quantity,
    "composite": composite,
}
SORTABLE = {"string", "token", "date", "number", "quantity", "reference", "uri"}
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]+$")
RESULT_PARAMS = {
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_total",
    "_summary",
    "_elements",
    "_cursor",
    "_format",
    "_pretty",
    "_type",
}
_UNSUPPORTED_RESULT = {"_contained", "_containedType", "_query", "_filter", "_list", "_text", "_content"}
_SUMMARY = {"true", "false", "text", "data", "count"}
_TOTAL = {"none", "estimate", "accurate"}


@dataclass(frozen=True)
class Clause:
    """One search parameter occurrence: an OR of ``values`` on ``param`` (after any chain)."""

    raw: str
    param: SearchParam
    modifier: str
    values: tuple[str, ...]
    # Chained parameters: (target type, parameter on it) steps before the final test.
    chain: tuple[tuple[str, SearchParam], ...] = ()


@dataclass(frozen=True)
class HasClause:
    """``_has:Type:ref:…``: resources referenced from ``source`` resources (through ``ref``) that match."""

    raw: str
    source: str
    ref: SearchParam
    inner: Clause | HasClause
    # The type being searched: only references to it count.
    target: str


@dataclass(frozen=True)
class Include:
    """An ``_include`` / ``_revinclude``: ``source:param[:target]``, or every reference of source (``*``)."""

    source: str
    params: tuple[SearchParam, ...]
    target: str | None
    iterate: bool
    raw: str


@dataclass(frozen=True)
class SearchRequest:
    """Everything a search asks for, validated."""

    rtype: str
    clauses: tuple[Clause | HasClause, ...] = ()
    count: int = 50
    sort: tuple[tuple[str, bool], ...] = ()  # (parameter code, descending)
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    total: str = "accurate"
    summary: str | None = None
    elements: tuple[str, ...] = ()
    cursor: str | None = None
    # The parameters actually applied, for the ``self`` link.
    applied: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _unknown(raw: str, rtype: str, strict: bool) -> None:
    if strict:
        raise BadRequest(f"search parameter '{raw}' is not supported for {rtype}", expression=raw)


def _parse_chain(rtype: str, raw: str, strict: bool) -> Clause | None:
    """``code[:modifier][.code[:Type]…]`` into a clause without values (filled by the caller)."""
    head, *links = raw.split(".")
    code, _, modifier = head.partition(":")
    param = supported_params(rtype).get(code)
    if param is None:
        _unknown(raw, rtype, strict)
        return None
    if not links:
        return Clause(raw, param, modifier, ())
    chain: list[tuple[str, SearchParam]] = []
    current_param, type_hint = param, modifier
    for link in links:
        if current_param.kind != "reference":
            raise BadRequest(f"'{raw}': only reference parameters can be chained", expression=raw)
        targets = [type_hint] if type_hint else [t for t in current_param.targets if is_served(t)]
        if type_hint and type_hint not in current_param.targets:
            raise BadRequest(f"'{raw}': {current_param.code} cannot refer to {type_hint}", expression=raw)
        next_code, _, next_mod = link.partition(":")
        candidates = [t for t in targets if is_served(t) and next_code in supported_params(t)]
        if len(candidates) != 1:
            raise BadRequest(
                f"'{raw}': the chain is ambiguous or unknown at '{link}' (name the type: {code}:Type.{link})",
                expression=raw,
            )
        target = candidates[0]
        chain.append((target, current_param))
        current_param, type_hint = supported_params(target)[next_code], next_mod
    return Clause(raw, current_param, type_hint, (), tuple(chain))


def _parse_has(rtype: str, raw: str, strict: bool) -> HasClause | None:
    # _has:Source:refParam:rest   where rest is another _has:… or a parameter of Source
    parts = raw.split(":", 3)
    if len(parts) != 4 or not _TYPE_NAME.match(parts[1]):
        raise BadRequest(f"'{raw}' is not of the form _has:Type:reference:parameter", expression=raw)
    _, source, ref_code, rest = parts
    if not is_served(source):
        raise BadRequest(f"'{raw}': resource type '{source}' is not served", expression=raw)
    ref = supported_params(source).get(ref_code)
    if ref is None or ref.kind != "reference" or (rtype not in ref.targets and ref.targets):
        raise BadRequest(f"'{raw}': {source}.{ref_code} is not a reference to {rtype}", expression=raw)
    inner: Clause | HasClause | None
    inner = _parse_has(source, rest, strict) if rest.startswith("_has:") else _parse_chain(source, rest, True)
    if inner is None:
        return None
    return HasClause(raw, source, ref, inner, rtype)


def _with_values(c: Clause | HasClause, values: tuple[str, ...]) -> Clause | HasClause:
    if isinstance(c, HasClause):
        return HasClause(c.raw, c.source, c.ref, _with_values(c.inner, values), c.target)
    return Clause(c.raw, c.param, c.modifier, values, c.chain)


def split_or(value: str) -> tuple[str, ...]:
    """Split on unescaped commas (OR), keeping the escapes for the kind to undo."""
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
    return tuple(parts)


def _check_modifier(c: Clause) -> None:
    mod = c.modifier
    if not mod:
        return
    if mod == "missing":
        if c.chain:
            raise BadRequest(f"'{c.raw}': :missing cannot end a chain", expression=c.raw)
        return
    if c.param.kind == "reference" and (_TYPE_NAME.match(mod) or mod == "identifier"):
        return
    module = KIND_MODULES.get(c.param.kind)
    if module is None or mod not in module.MODIFIERS:
        raise BadRequest(
            f"modifier ':{mod}' is not supported on {c.param.kind} parameter '{c.param.code}'",
            expression=c.raw,
        )


def _parse_count(value: str, maximum: int) -> int:
    if not value.isdigit():
        raise BadRequest(f"_count '{value}' is not a whole number", expression="_count")
    return min(int(value), maximum)


def _parse_sort(rtype: str, value: str) -> tuple[tuple[str, bool], ...]:
    keys = []
    for item in value.split(","):
        desc = item.startswith("-")
        code = item[1:] if desc else item
        if code == "_id":
            keys.append((code, desc))
            continue
        p = supported_params(rtype).get(code)
        if p is None or p.kind not in SORTABLE:
            raise BadRequest(f"cannot sort {rtype} by '{code}'", expression="_sort")
        keys.append((code, desc))
    return tuple(keys)


def _parse_include(rtype: str, value: str, name: str, reverse: bool) -> Include:
    iterate = name.endswith(":iterate") or name.endswith(":recurse")
    if value == "*":
        source = rtype
        params = tuple(p for p in supported_params(source).values() if p.kind == "reference")
        return Include(source, params, None, iterate, value)
    parts = value.split(":")
    if len(parts) not in {2, 3} or not is_served(parts[0]):
        raise BadRequest(f"{name} '{value}' is not of the form Type:parameter[:targetType]", expression=name)
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if code == "*":
        params = tuple(p for p in supported_params(source).values() if p.kind == "reference")
    else:
        p = supported_params(source).get(code)
        if p is None or p.kind != "reference":
            raise BadRequest(
                f"{name} '{value}': {source}.{code} is not a reference parameter", expression=name
            )
        params = (p,)
    if target is not None and not is_served(target):
        raise BadRequest(f"{name} '{value}': '{target}' is not a served type", expression=name)
    if not reverse and source != rtype and not iterate:
        raise BadRequest(f"_include '{value}' must start with {rtype} (or use :iterate)", expression=name)
    return Include(source, params, target, iterate, value)


def parse_search(
    rtype: str, params: Sequence[tuple[str, str]], *, default_count: int, max_count: int, strict: bool = False
) -> SearchRequest:
    """Validate ``params`` for a search of ``rtype``."""
    clauses: list[Clause | HasClause] = []
    applied: list[tuple[str, str]] = []
    count, sort, total, summary = default_count, (), "accurate", None
    includes: list[Include] = []
    revincludes: list[Include] = []
    elements: tuple[str, ...] = ()
    cursor = None
    for name, value in params:
        base_name = name.split(":", 1)[0]
        if base_name in _UNSUPPORTED_RESULT:
            raise BadRequest(
                f"'{name}' is not supported by this server", code="not-supported", expression=name
            )
        if base_name in RESULT_PARAMS:
            if name == "_count":
                count = _parse_count(value, max_count)
            elif name == "_sort":
                sort = _parse_sort(rtype, value)
            elif base_name == "_include":
                includes.append(_parse_include(rtype, value, name, reverse=False))
            elif base_name == "_revinclude":
                revincludes.append(_parse_include(rtype, value, name, reverse=True))
            elif name == "_total":
                if value not in _TOTAL:
                    raise BadRequest(
                        f"_total '{value}' is not none, estimate or accurate", expression="_total"
                    )
                total = value
            elif name == "_summary":
                if value not in _SUMMARY:
                    raise BadRequest(
                        f"_summary '{value}' is not one of {sorted(_SUMMARY)}", expression="_summary"
                    )
                summary = value
            elif name == "_elements":
                elements = tuple(e.strip() for e in value.split(",") if e.strip())
            elif name == "_cursor":
                cursor = value
                continue
            else:
                continue
            applied.append((name, value))
            continue
        if len(name) > 256 or len(value) > 4096:
            raise BadRequest(
                f"search parameter '{name[:64]}' is too long", code="too-long", expression=name[:64]
            )
        if "\x00" in name or "\x00" in value:
            raise BadRequest("NUL bytes are not allowed in search parameters", expression=name[:64])
        if base_name == "_has":
            parsed: Clause | HasClause | None = _parse_has(rtype, name, strict)
        else:
            parsed = _parse_chain(rtype, name, strict)
        if parsed is None:
            continue
        if isinstance(parsed, Clause):
            _check_modifier(parsed)
            if parsed.modifier == "missing" and value not in {"true", "false"}:
                raise BadRequest(f"'{name}' takes true or false", expression=name)
        values = split_or(value)
        if any(v == "" for v in values):
            raise BadRequest(f"search parameter '{name}' has an empty value", expression=name)
        clauses.append(_with_values(parsed, values))
        applied.append((name, value))
    return SearchRequest(
        rtype,
        tuple(clauses),
        count,
        sort,
        tuple(includes),
        tuple(revincludes),
        total,
        summary,
        elements,
        cursor,
        tuple(applied),
    )
