"""A compiled evaluator for the FHIRPath subset that search-parameter expressions use.

General FHIRPath engines cost hundreds of microseconds an evaluation; index extraction runs on every
write for every parameter, so expressions are compiled once into plain functions over the JSON.
Supported: ``Type.a.b`` paths (choice elements by their ``[x]``-less name), unions ``|``, ``as Type`` /
``(x as Type)`` / ``.as(Type)`` / ``.ofType(Type)``, ``.where(resolve() is Type)`` on references, and
``.where(field='value')``. :func:`compile_path` returns None for anything else, and the parameter is
then not indexed (and not advertised) rather than indexed wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

Evaluator = Callable[[dict[str, Any]], list[Any]]

_WHERE_RESOLVE = re.compile(r"^where\(resolve\(\) is ([A-Za-z]+)\)$")
_WHERE_EQ = re.compile(r"^where\(([A-Za-z]+)\s*=\s*'([^']*)'\)$")
_AS_CALL = re.compile(r"^(?:as|ofType)\(([A-Za-z]+)\)$")
_NAME = re.compile(r"^[a-z][A-Za-z0-9]*$")


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


def _typed(items: list[Any], name: str, type_code: str) -> list[Any]:
    """``name as Type``: the choice element ``name[x]`` holding that type."""
    key = name + (type_code[0].upper() + type_code[1:])
    return _children(items, key)


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
    pending_name: str | None = None
    for step in steps[1:]:
        m_as = _AS_CALL.match(step)
        if m_as:
            if pending_name is None:
                return None
            type_code = m_as.group(1)
            funcs.append(lambda items, n=pending_name, t=type_code: _typed(items, n, t))
            pending_name = None
            continue
        if pending_name is not None:
            funcs.append(lambda items, n=pending_name: _children(items, n))
            pending_name = None
        m_res = _WHERE_RESOLVE.match(step)
        m_eq = _WHERE_EQ.match(step)
        if m_res:
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
            pending_name = step
        else:
            return None
    if pending_name is not None:
        funcs.append(lambda items, n=pending_name: _children(items, n))

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
