"""Composite parameters: several components that must hold for the SAME element.

``DocumentReference?relationship=replaces$DocumentReference/123`` asks for one ``relatesTo`` whose code is
``replaces`` and whose target is that document, not a code on one element and a target on another. So the
index holds, per element of the parameter's expression, every combination of its components' index
values joined by a separator no search value contains, and a query becomes an equality (or ``$in``) on
those combinations. Components may be token, reference or uri parameters: the kinds whose values are
literal strings (a token ``system|`` prefix has no literal form and is refused in a composite).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import reference, token, uri
from fhir_server.search.kinds._syntax import check

MODIFIERS: frozenset[str] = frozenset()
KINDS = {"token": token, "reference": reference, "uri": uri}
_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Component:
    """One component: its kind, the child element it reads, and (references) its target types."""

    kind: str
    expression: str
    targets: tuple[str, ...] = ()


def _children(element: dict[str, Any], name: str) -> list[Any]:
    """The values of child ``name`` of an element, a choice (``value`` → ``valueBoolean``) included."""
    found: list[Any] = []
    for key, value in element.items():
        if key == name or (key.startswith(name) and key[len(name) : len(name) + 1].isupper()):
            found.extend(value if isinstance(value, list) else [value])
    return found


def extract(elements: list[Any], components: tuple[Component, ...]) -> list[str]:
    """The joined component values of every element."""
    out: set[str] = set()
    for element in elements:
        if not isinstance(element, dict):
            continue
        per_component = []
        for c in components:
            stored = KINDS[c.kind].extract(_children(element, c.expression), False).get("", [])
            per_component.append(stored if isinstance(stored, list) else [stored])
        out.update(_SEPARATOR.join(combo) for combo in itertools.product(*per_component))
    return sorted(out)


def _split_dollars(value: str) -> list[str]:
    """Split on unescaped ``$``, keeping each part escaped for its component's own parser."""
    parts, start, i = [], 0, 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == "$":
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return parts


def _literals(condition: Any, name: str) -> list[str]:
    if isinstance(condition, str):
        return [condition]
    if isinstance(condition, dict) and list(condition) == ["$in"]:
        return [v for v in condition["$in"] if isinstance(v, str)]
    raise BadRequest(f"this value of '{name}' has no exact form a composite can match", expression=name)


def compile(
    field: str, value: str, modifier: str, name: str, components: tuple[Component, ...], base: str
) -> dict[str, Any]:
    """The condition for one ``a$b`` value."""
    check(value, name)
    if modifier:
        raise BadRequest(f"modifier ':{modifier}' is not supported on '{name}'", expression=name)
    parts = _split_dollars(value)
    if len(parts) != len(components):
        raise BadRequest(
            f"'{value}' has {len(parts)} '$'-separated parts; '{name}' takes {len(components)}",
            expression=name,
        )
    alternatives = []
    for part, c in zip(parts, components, strict=True):
        check(part, name)
        if c.kind == "reference":
            cond = reference.compile_reference("v", part, "", name, c.targets, base)["v"]
        elif c.kind == "token":
            cond = token.match(part, name)
        else:
            cond = uri.compile("v", part, "", name, False)["v"]
        alternatives.append(_literals(cond, name))
    combos = sorted(_SEPARATOR.join(combo) for combo in itertools.product(*alternatives))
    return {field: combos[0] if len(combos) == 1 else {"$in": combos}}
