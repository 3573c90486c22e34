"""Invariants (``ElementDefinition.constraint``) evaluated with fhirpathpy.

Each expression is compiled once. It is evaluated on one instance of its element, typed (so that
``value`` finds ``valueString`` in an Extension), with ``%resource`` and ``%rootResource`` bound to
the resource being validated. Only a result of ``false`` breaks an invariant: an empty result means
the expression had nothing to say. ``hasValue()``, which fhirpathpy lacks, is given to it (``per-1``
on Period needs it). ``ele-1`` ("a value or children") is not evaluated: it is what the JSON shape
check of every write enforces (no nulls, empty objects or strings), and it sits on every element. An
expression fhirpathpy cannot evaluate (``htmlChecks()`` of the narrative) is skipped, and remembered
so the attempt is made once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

log = logging.getLogger(__name__)
_R4 = models["r4"]
_compiled: dict[str, Callable[..., list[Any]] | None] = {}
_NOT_EVALUATED = {"ele-1"}


def _has_value(inputs: list[Any]) -> list[bool]:
    # One primitive with a value (not only extensions, which leave no data).
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)]


_OPTIONS = {
    # ``trace()`` (used by dom-3) prints unless given a function of its own.
    "traceFn": lambda label, value: None,
    "userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}},
}


def _compiled_for(expression: str) -> Callable[..., list[Any]] | None:
    if expression not in _compiled:
        try:
            _compiled[expression] = compile_fhirpath(expression, _R4, _OPTIONS)
        except Exception:  # fhirpathpy raises plain Exceptions on syntax it does not know
            log.info("invariant not evaluated (does not compile): %s", expression)
            _compiled[expression] = None
    return _compiled[expression]


def holds(key: str, expression: str, value: Any, type_path: str, resource: dict[str, Any]) -> bool | None:
    """Whether the invariant ``key`` holds on ``value`` (an instance of ``type_path``); None when it is
    not evaluated."""
    if key in _NOT_EVALUATED:
        return None
    fn = _compiled_for(expression)
    if fn is None:
        return None
    node = ResourceNode.create_node(value, type_path)
    try:
        result = fn(node, {"resource": resource, "rootResource": resource})
    except Exception as exc:
        if "Not implemented" in str(exc):
            log.info("invariant not evaluated (%s): %s", exc, expression)
            _compiled[expression] = None
        return None
    return not (len(result) == 1 and result[0] is False)
