"""A compiled evaluator for the FHIRPath subset that search-parameter expressions use.

General FHIRPath engines cost hundreds of microseconds an evaluation; index extraction runs on every
write for every parameter, so expressions are compiled once into plain functions over the JSON.
Supported: ``Type.a.b`` paths (choice elements by their ``[x]``-less name), unions ``|``, ``as Type`` /
``(x as Type)`` / ``.as(Type)`` / ``.ofType(Type)``, ``.where(resolve() is Type)`` on references, and
``.where(field='value')``, ``.extension('url')`` (the extensions with that url; as the last step, their
values: what a search on an extension compares), and the boolean ``Type.a.exists() and Type.a != false``
(``Patient.deceased``). :func:`compile_path` returns None for anything else, and the parameter is then
not indexed (and not advertised) rather than indexed wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from fhir_server.fhir.typemodel import elements

Evaluator = Callable[[dict[str, Any]], list[Any]]

_WHERE_RESOLVE = re.compile(r"^where\(resolve\(\) is ([A-Za-z]+)\)$")
_WHERE_EQ = re.compile(r"^where\(([A-Za-z]+)\s*=\s*'([^']*)'\)$")
_AS_CALL = re.compile(r"^(?:as|ofType)\(([A-Za-z]+)\)$")
_NAME = re.compile(r"^[a-z][A-Za-z0-9]*$")
_EXTENSION = re.compile(r"^extension\('([^']+)'\)$")
_EXTENSION_ALIASES = {
    "http://hl7.org/fhir/StructureDefinition/patient-extensions-Patient-mothersMaidenName": (
        "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
    )
}
_PRESENT_NOT_FALSE = re.compile(r"^([A-Z][A-Za-z]+\.[a-z][A-Za-z0-9]*)\.exists\(\) and \1 != false$")


def _children(items: list[Any], name: str) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        value = item.get(name)
        if value is None:
            continue
        if isinstance(value, list):
            out.extend(value)
        else:
            out.append(value)
    return out


def _keys(type_name: str | None, name: str) -> tuple[tuple[str, ...], str | None]:
    """The JSON keys of element ``name`` of ``type_name`` (several for a choice: ``effective`` is
    ``effectiveDateTime`` or ``effectivePeriod``) and the type of its values when there is one."""
    found = elements(type_name) if type_name else None
    if not found:
        return (name,), None
    matches = [(key, e) for key, e in found.items() if e.path_name == name]
    if not matches:
        return (name,), None
    if len(matches) == 1 and not matches[0][1].name.endswith("[x]"):
        return (matches[0][0],), matches[0][1].types[0]
    return tuple(key for key, _ in matches), None


def _children_of(items: list[Any], keys: tuple[str, ...]) -> list[Any]:
    if len(keys) == 1:
        return _children(items, keys[0])
    return [v for key in keys for v in _children(items, key)]


def _typed(items: list[Any], name: str, type_code: str) -> list[Any]:
    """``name as Type``: the choice element ``name[x]`` holding that type."""
    key = name + (type_code[0].upper() + type_code[1:])
    return _children(items, key)


def _extension_urls(url: str) -> frozenset[str]:
    """The urls an ``extension('url')`` step accepts: the R4 mothersMaidenName parameter names its
    extension by a url that differs from the extension's own definition, which is what data carries."""
    return frozenset({url, _EXTENSION_ALIASES.get(url, url)})


def _extensions(items: list[Any], urls: frozenset[str], values: bool) -> list[Any]:
    found = [e for e in _children(items, "extension") if isinstance(e, dict) and e.get("url") in urls]
    if not values:
        return found
    return [v for e in found for k, v in e.items() if k.startswith("value") and k[5:6].isupper()]


def _present_not_false(path: Evaluator) -> Evaluator:
    """``x.exists() and x != false`` as one boolean (an absent element is false, not empty)."""
    return lambda res: [any(v is not False for v in path(res))]


def _split_top(expr: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts, depth, quote, start = [], 0, False, 0
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and depth == 0 and expr.startswith(sep, i):
            parts.append(expr[start:i])
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts]


def _compile_steps(root_type: str, expr: str) -> Evaluator | None:
    expr = expr.strip()
    present = _PRESENT_NOT_FALSE.match(expr)
    if present:
        path = _compile_steps(root_type, present.group(1))
        return _present_not_false(path) if path is not None else None
    # "(A.b as Quantity)" and "A.b as Quantity"
    if expr.startswith("(") and expr.endswith(")") and len(_split_top(expr[1:-1], "|")) == 1:
        expr = expr[1:-1].strip()
    as_parts = _split_top(expr, " as ")
    if len(as_parts) == 2:
        inner = as_parts[0]
        head, _, last = inner.rpartition(".")
        base = _compile_steps(root_type, head) if head else None
        if base is None or not _NAME.match(last):
            return None
        type_code = as_parts[1]
        return lambda res, b=base, n=last, t=type_code: _typed(b(res), n, t)
    if len(as_parts) > 2:
        return None
    steps = _split_top(expr, ".")
    if not steps or steps[0] != root_type:
        return None
    funcs: list[Callable[[list[Any]], list[Any]]] = []
    current: str | None = root_type
    pending: tuple[str, tuple[str, ...]] | None = None
    for step in steps[1:]:
        m_as = _AS_CALL.match(step)
        if m_as:
            if pending is None:
                return None
            type_code = m_as.group(1)
            funcs.append(lambda items, n=pending[0], t=type_code: _typed(items, n, t))
            pending, current = None, type_code
            continue
        if pending is not None:
            funcs.append(lambda items, k=pending[1]: _children_of(items, k))
            pending = None
        m_res = _WHERE_RESOLVE.match(step)
        m_eq = _WHERE_EQ.match(step)
        m_ext = _EXTENSION.match(step)
        if m_ext:
            last, urls = step is steps[-1], _extension_urls(m_ext.group(1))
            funcs.append(lambda items, u=urls, v=last: _extensions(items, u, v))
            current = None if last else "Extension"
        elif m_res:
            prefix = m_res.group(1) + "/"
            funcs.append(
                lambda items, p=prefix: [
                    i for i in items if isinstance(i, dict) and _ref_type_matches(i.get("reference"), p)
                ]
            )
        elif m_eq:
            field, value = m_eq.groups()
            funcs.append(
                lambda items, f=field, v=value: [i for i in items if isinstance(i, dict) and i.get(f) == v]
            )
        elif _NAME.match(step):
            keys, next_type = _keys(current, step)
            pending, current = (step, keys), next_type
        else:
            return None
    if pending is not None:
        funcs.append(lambda items, k=pending[1]: _children_of(items, k))

    def run(resource: dict[str, Any]) -> list[Any]:
        items: list[Any] = [resource]
        for f in funcs:
            items = f(items)
            if not items:
                break
        return items

    return run


def _ref_type_matches(reference: Any, prefix: str) -> bool:
    if not isinstance(reference, str):
        return False
    # Relative "Patient/1" or absolute ".../Patient/1" (and versioned forms).
    return reference.startswith(prefix) or f"/{prefix}" in reference


@cache
def compile_path(root_type: str, expression: str) -> Evaluator | None:
    """Compile a search-parameter expression for ``root_type``; None when outside the subset."""
    alternatives = _split_top(expression, "|")
    compiled = [
        _compile_steps(root_type, alt) for alt in alternatives if alt.lstrip("(").startswith(root_type)
    ]
    if not compiled or any(c is None for c in compiled):
        return None
    evaluators = [c for c in compiled if c is not None]
    if len(evaluators) == 1:
        return evaluators[0]
    return lambda res: [v for e in evaluators for v in e(res)]
