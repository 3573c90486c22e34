"""Check the *required* terminology bindings of a resource against the value sets of the base spec.

The R4B models accept any code, so this is where ``Patient.gender = "xx"`` is caught. The walk follows
``typemodel`` through nested datatypes, backbone elements and contained resources (each with its own
type). A ``code`` element must hold a code of the value set, in any of its systems; a ``Coding`` must
match system and code (a Coding without a system matches on code alone); a ``CodeableConcept`` needs
at least one such Coding, so it is reported as a whole. Value sets the generator could not enumerate
(``"open"``: BCP-13 mime types, ISO 4217 currencies…) are never checked.

Everything is precomputed once per process: per type, only the JSON keys that can lead to a binding
are visited, and each value set is a pair of frozensets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib.resources import files
from typing import Any

import orjson

from fhir_server.fhir import typemodel


@dataclass(frozen=True, slots=True)
class BindingIssue:
    """A value outside the value set its element is bound to with strength *required*."""

    expression: str  # FHIRPath of the offending element, e.g. ``Patient.name[0].use``
    code: str  # the offending code; for a CodeableConcept its codes joined with ", " ("" when none)
    valueset: str


@dataclass(frozen=True, slots=True)
class _ValueSet:
    url: str
    codes: frozenset[str]
    pairs: frozenset[tuple[str, str]]

    def has_coding(self, system: object, code: str) -> bool:
        if isinstance(system, str):
            return (system, code) in self.pairs
        return code in self.codes


class _Kind(Enum):
    CODE = 1
    CODING = 2
    CODEABLE = 3
    DESCEND = 4
    RESOURCE = 5


@dataclass(frozen=True, slots=True)
class _Step:
    kind: _Kind
    path_name: str
    array: bool
    type_name: str  # the type to descend into (unused for CODE and RESOURCE)
    valueset: _ValueSet | None


@cache
def _valuesets() -> dict[str, _ValueSet | None]:
    raw: dict[str, Any] = orjson.loads(
        files("fhir_server").joinpath("definitions/valuesets.json").read_bytes()
    )
    out: dict[str, _ValueSet | None] = {}
    for url, spec in raw.items():
        if spec.get("open"):
            out[url] = None
            continue
        systems: dict[str, list[str]] = spec["codes"]
        out[url] = _ValueSet(
            url=url,
            codes=frozenset(code for codes in systems.values() for code in codes),
            pairs=frozenset((system, code) for system, codes in systems.items() for code in codes),
        )
    return out


def r4_valueset(url: str) -> _ValueSet | None:
    """The enumerated codes of an R4 value set of a required binding (None: unknown or not enumerable)."""
    return _valuesets().get(url.split("|")[0])


def _step_for(element: typemodel.ElementDef) -> _Step | None:
    # Every element but an unresolved choice has exactly one type, and choices resolve per JSON key.
    type_name = element.types[0] if element.types else ""
    valueset = _valuesets().get(element.binding) if element.binding else None
    kind: _Kind | None = None
    if type_name == typemodel.RESOURCE:
        kind = _Kind.RESOURCE
    elif valueset is not None and type_name == "code":
        kind = _Kind.CODE
    elif valueset is not None and type_name == "Coding":
        kind = _Kind.CODING
    elif valueset is not None and type_name == "CodeableConcept":
        kind = _Kind.CODEABLE
    elif typemodel.is_complex(type_name):
        kind = _Kind.DESCEND
    if kind is None:
        return None
    return _Step(kind, element.path_name, element.array, type_name, valueset)


@cache
def _plan(type_name: str) -> Mapping[str, _Step]:
    """The JSON keys of ``type_name`` worth visiting, and what to do with each."""
    steps: dict[str, _Step] = {}
    for key, element in (typemodel.elements(type_name) or {}).items():
        step = _step_for(element)
        if step is not None:
            steps[key] = step
    return steps


def check_required_bindings(resource: dict[str, Any]) -> list[BindingIssue]:
    """Every value of ``resource`` that breaks a required binding; empty when it has none."""
    issues: list[BindingIssue] = []
    resource_type = resource.get("resourceType")
    if isinstance(resource_type, str):
        _walk(resource_type, resource, resource_type, issues)
    return issues


def _walk(type_name: str, obj: dict[str, Any], path: str, issues: list[BindingIssue]) -> None:
    plan = _plan(type_name)
    for key, value in obj.items():
        step = plan.get(key)
        if step is None:
            continue
        base = f"{path}.{step.path_name}"
        if isinstance(value, list):
            for index, item in enumerate(value):
                _visit(step, item, f"{base}[{index}]", issues)
        else:
            _visit(step, value, base, issues)


def _visit(step: _Step, value: Any, path: str, issues: list[BindingIssue]) -> None:
    if step.kind is _Kind.CODE:
        vs = step.valueset
        if vs is not None and isinstance(value, str) and value not in vs.codes:
            issues.append(BindingIssue(path, value, vs.url))
        return
    if not isinstance(value, dict):
        return
    if step.kind is _Kind.RESOURCE:
        contained_type = value.get("resourceType")
        if isinstance(contained_type, str):
            _walk(contained_type, value, path, issues)
        return
    if step.kind is _Kind.CODING:
        _check_coding(step, value, path, issues)
    elif step.kind is _Kind.CODEABLE:
        _check_codeable(step, value, path, issues)
    # Extensions inside a bound Coding or CodeableConcept can carry bound values of their own.
    _walk(step.type_name, value, path, issues)


def _check_coding(step: _Step, coding: dict[str, Any], path: str, issues: list[BindingIssue]) -> None:
    vs = step.valueset
    code = coding.get("code")
    if vs is not None and isinstance(code, str) and not vs.has_coding(coding.get("system"), code):
        issues.append(BindingIssue(path, code, vs.url))


def _check_codeable(step: _Step, concept: dict[str, Any], path: str, issues: list[BindingIssue]) -> None:
    vs = step.valueset
    if vs is None:
        return
    codings = [
        c for c in concept.get("coding") or () if isinstance(c, dict) and isinstance(c.get("code"), str)
    ]
    if not codings and "text" not in concept:
        return  # nothing coded, nothing said: only extensions (e.g. data-absent-reason)
    if any(vs.has_coding(c.get("system"), c["code"]) for c in codings):
        return
    issues.append(BindingIssue(path, ", ".join(c["code"] for c in codings), vs.url))
