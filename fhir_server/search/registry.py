"""Search parameters: the generated R4 definitions, and which of them this server indexes.

The same registry drives index extraction at write time, query compilation, the MongoDB indexes created
at start-up and the CapabilityStatement, so what is advertised is exactly what works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from fhir_server.fhir.registry import SERVED_TYPES
from fhir_server.search.paths import Evaluator, compile_path

# Parameters handled by storage fields rather than extracted index values.
SPECIAL = {"_id"}
# Value kinds indexed so far; the other kinds are added as their extract/compile pairs land.
INDEXED_KINDS = {"token"}


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

    @property
    def field(self) -> str:
        """The index field holding this parameter's values."""
        return f"idx.{self.code}"


def _load(name: str) -> Any:
    return json.loads(resources.files("fhir_server.definitions").joinpath(name).read_text("utf-8"))


def _make(rtype: str, code: str, d: dict[str, Any]) -> SearchParam:
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
    )


@cache
def all_params() -> dict[str, dict[str, SearchParam]]:
    """Every R4 parameter of every served type, supported or not."""
    raw = _load("search_parameters.json")
    return {t: {c: _make(t, c, d) for c, d in raw.get(t, {}).items()} for t in SERVED_TYPES}


def _supported(p: SearchParam) -> bool:
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
