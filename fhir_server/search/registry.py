"""Search parameters: the generated R4 definitions plus the DMP's own (SearchParameter resources in
``definitions/dmp_search_parameters.json``), and which of them this server indexes.

The same registry drives index extraction at write time, query compilation, the MongoDB indexes created
at start-up and the CapabilityStatement, so what is advertised is exactly what works.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.fhir.typemodel import ElementDef, elements
from fhir_server.search.kinds.composite import KINDS as _COMPONENT_MODULES
from fhir_server.search.kinds.composite import Component
from fhir_server.search.paths import Evaluator, compile_path

# Parameters handled by storage fields rather than extracted index values.
SPECIAL = {"_id"}
# Value kinds with an extract/compile pair in ``search/kinds/``; composites whose components are of
# ``COMPONENT_KINDS`` (search/kinds/composite.py).
INDEXED_KINDS = {"token", "string", "date", "reference", "uri", "number", "quantity", "composite"}
COMPONENT_KINDS = frozenset(_COMPONENT_MODULES)
_STEP = re.compile(r"^[a-z][A-Za-z0-9]*$")


@dataclass(frozen=True)
class SearchParam:
    """One search parameter of one resource type."""

    rtype: str
    code: str
    kind: str
    url: str
    expression: str
    evaluate: Evaluator | None
    targets: tuple[str, ...] = ()
    # At most one value per resource (per the element model): stored as a scalar, so it can take part
    # in compound indexes (MongoDB cannot index two parallel arrays).
    single: bool = False
    # A composite's components, in order; empty when a component is of a kind composites cannot hold.
    components: tuple[Component, ...] = ()

    @property
    def field(self) -> str:
        """The index field holding this parameter's values."""
        return f"idx.{self.code}"


def _load(name: str) -> Any:
    return json.loads(resources.files("fhir_server.definitions").joinpath(name).read_text("utf-8"))


def _element(type_name: str, name: str) -> ElementDef | None:
    found = elements(type_name) or {}
    if name in found:
        return found[name]
    return next((e for e in found.values() if e.path_name == name), None)


def _is_single(rtype: str, expr: str) -> bool:
    """Whether a one-alternative path expression can yield at most one node."""
    if "|" in expr:
        return False
    path = expr.strip("()").split(" as ")[0]
    steps = [s for s in path.split(".")[1:] if not s.startswith(("where(", "as(", "ofType("))]
    current = rtype
    for step in steps:
        if not _STEP.match(step):
            return False
        element = _element(current, step)
        if element is None or element.array:
            return False
        current = element.types[0]
    return bool(steps)


def _components(expr: str, d: dict[str, Any], raw: dict[str, dict[str, Any]]) -> tuple[Component, ...]:
    """A composite's components. Each one's kind and targets come from the parameter of the type whose
    expression reads the same element (the R4 definitions link some components to a wrong one)."""
    by_expression = {p.get("expression"): p for p in raw.values()}
    by_url = {p.get("url"): p for p in raw.values()}
    out = []
    for c in d.get("component", []):
        same = by_expression.get(f"{expr}.{c['expression']}") or by_url.get(c["definition"])
        if same is None or same["type"] not in COMPONENT_KINDS or not _STEP.match(c["expression"]):
            return ()
        out.append(Component(same["type"], c["expression"], tuple(same.get("target", ()))))
    return tuple(out)


def _make(rtype: str, code: str, d: dict[str, Any], raw: dict[str, dict[str, Any]]) -> SearchParam:
    expr = d.get("expression", "")
    root = "Resource" if expr.startswith("Resource.") else rtype
    return SearchParam(
        rtype,
        code,
        d["type"],
        d["url"],
        expr,
        compile_path(root, expr) if expr else None,
        tuple(d.get("target", ())),
        _is_single(rtype, expr) if expr else False,
        _components(expr, d, raw) if d["type"] == "composite" else (),
    )


def _branch(rtype: str, expression: str) -> str:
    """The part of a multi-type expression that applies to ``rtype`` (as the R4 definitions are split)."""
    parts = [p.strip() for p in expression.split("|")]
    return " | ".join(p for p in parts if p.startswith((rtype + ".", f"({rtype}."))) or expression


def dmp_definitions() -> dict[str, dict[str, dict[str, Any]]]:
    """The DMP's SearchParameter resources, in the compact form of the generated definitions."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in _load("dmp_search_parameters.json")["entry"]:
        sp = entry["resource"]
        for rtype in sp["base"]:
            compact = {"type": sp["type"], "url": sp["url"], "expression": _branch(rtype, sp["expression"])}
            if sp.get("target"):
                compact["target"] = sp["target"]
            out.setdefault(rtype, {})[sp["code"]] = compact
    return out


@cache
def all_params() -> dict[str, dict[str, SearchParam]]:
    """Every R4 and DMP parameter of every served type, supported or not."""
    raw = _load("search_parameters.json")
    for rtype, params in dmp_definitions().items():
        clash = set(params) & set(raw.get(rtype, {}))
        if clash:
            raise RuntimeError(f"DMP search parameters {sorted(clash)} of {rtype} redefine R4 ones")
        raw.setdefault(rtype, {}).update(params)
    return {t: {c: _make(t, c, d, raw.get(t, {})) for c, d in raw.get(t, {}).items()} for t in SERVED_TYPES}


def _supported(p: SearchParam) -> bool:
    if p.kind == "composite" and not p.components:
        return False
    return p.code in SPECIAL or (p.kind in INDEXED_KINDS and p.evaluate is not None)


@cache
def supported_params(rtype: str) -> dict[str, SearchParam]:
    """The parameters of ``rtype`` this server indexes and answers."""
    return {c: p for c, p in sorted(all_params().get(rtype, {}).items()) if _supported(p)}


@cache
def compartment_params() -> dict[str, tuple[SearchParam, ...]]:
    """Per type, the reference parameters that put a resource in a patient's compartment."""
    raw: dict[str, list[str]] = _load("compartment_patient.json")
    out: dict[str, tuple[SearchParam, ...]] = {}
    for rtype, codes in raw.items():
        params = all_params().get(rtype, {})
        out[rtype] = tuple(params[c] for c in codes if c in params and params[c].evaluate is not None)
    return out
