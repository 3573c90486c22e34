"""The FHIR R4 element model of the served types, read from ``definitions/types.json``.

``types.json`` (written by ``scripts/gen_definitions.py``) maps each complex type to its elements.
Backbone elements are anonymous types named by their path (``Patient.contact``) and elements that
reuse another element's definition point at that path (``ExplanationOfBenefit.item.adjudication``),
so walking a resource is always "look up the JSON key in the current type, descend into its type".
A type missing from the model is a primitive; an element typed ``Resource`` holds a resource whose
``resourceType`` names its type.

Choice elements are stored once under ``name[x]`` with every allowed type; this module expands them
into one entry per JSON key (``valueString``, ``valueCodeableConcept``) whose ``types`` is that one
type. The JSON keys of primitive extensions (``_birthDate``) are not elements and resolve to None.

``check_json_types`` uses the model to catch what the R4B models let through but R4 JSON forbids:
elements R4 does not define, a single value where R4 has an array (or the reverse), and primitives
of the wrong JSON kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any, Final

import orjson

RESOURCE = "Resource"

_BOOLEAN: Final = frozenset({"boolean"})
_INTEGER: Final = frozenset({"integer", "positiveInt", "unsignedInt"})
_DECIMAL: Final = frozenset({"decimal"})


@dataclass(frozen=True, slots=True)
class ElementDef:
    """One element of a type, as seen from a JSON key."""

    name: str  # the element's name in the definition: ``gender``, ``value[x]``
    types: tuple[str, ...]  # one type for a resolved choice key; anonymous types are paths
    array: bool
    summary: bool
    min: int
    binding: str | None  # ValueSet canonical of a *required* binding, without version

    @property
    def path_name(self) -> str:
        """The name FHIRPath uses for the element: a choice loses its ``[x]``."""
        return self.name.removesuffix("[x]")


@cache
def _raw_model() -> dict[str, dict[str, Any]]:
    data = files("fhir_server").joinpath("definitions/types.json").read_bytes()
    model: dict[str, dict[str, Any]] = orjson.loads(data)
    return model


def _choice_key(base: str, type_code: str) -> str:
    return base + type_code[:1].upper() + type_code[1:]


@cache
def elements(type_name: str) -> Mapping[str, ElementDef] | None:
    """Every JSON key an object of ``type_name`` may carry, or None for a primitive or unknown type."""
    raw = _raw_model().get(type_name)
    if raw is None:
        return None
    out: dict[str, ElementDef] = {}
    for name, spec in raw.items():
        common = {
            "name": name,
            "array": spec["array"],
            "summary": spec["summary"],
            "min": spec["min"],
            "binding": spec.get("binding"),
        }
        if name.endswith("[x]"):
            base = name[:-3]
            for type_code in spec["types"]:
                out[_choice_key(base, type_code)] = ElementDef(types=(type_code,), **common)
        else:
            out[name] = ElementDef(types=tuple(spec["types"]), **common)
    return MappingProxyType(out)


def element_def(type_name: str, json_key: str) -> ElementDef | None:
    """The element a JSON key of an object of ``type_name`` stands for, resolving choice keys."""
    found = elements(type_name)
    return None if found is None else found.get(json_key)


def is_complex(type_name: str) -> bool:
    """Whether values of the type are JSON objects with modelled elements (not primitives)."""
    return type_name in _raw_model()


@cache
def summary_keys(type_name: str) -> frozenset[str]:
    """JSON keys of the elements marked ``isSummary`` directly under ``type_name``."""
    return frozenset(key for key, d in (elements(type_name) or {}).items() if d.summary)


@cache
def mandatory_keys(type_name: str) -> frozenset[str]:
    """JSON keys of the elements with a minimum cardinality of at least one under ``type_name``."""
    return frozenset(key for key, d in (elements(type_name) or {}).items() if d.min >= 1)


def check_json_types(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """``(FHIRPath, message)`` for every element of ``resource`` whose JSON shape R4 does not allow.

    A resource of a type missing from the model (e.g. an unserved contained type) is not checked.
    """
    problems: list[tuple[str, str]] = []
    resource_type = resource.get("resourceType")
    if isinstance(resource_type, str) and is_complex(resource_type):
        _check_object(resource_type, resource, resource_type, problems, is_resource=True)
    return problems


def _check_object(
    type_name: str, obj: dict[str, Any], path: str, problems: list[tuple[str, str]], is_resource: bool = False
) -> None:
    defs = elements(type_name) or {}
    for key, value in obj.items():
        if is_resource and key == "resourceType":
            continue
        if key.startswith("_"):
            _check_primitive_extension(defs.get(key[1:]), value, f"{path}.{key}", problems)
            continue
        element = defs.get(key)
        if element is None:
            problems.append((f"{path}.{key}", "unknown element"))
            continue
        base = f"{path}.{element.path_name}"
        if isinstance(value, list) != element.array:
            problems.append((base, "must be an array" if element.array else "must not be an array"))
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                if item is not None:  # a null paired with ``_key``; the JSON shape check judges it
                    _check_value(element.types[0], item, f"{base}[{index}]", problems)
        else:
            _check_value(element.types[0], value, base, problems)


def _check_primitive_extension(
    element: ElementDef | None, value: Any, path: str, problems: list[tuple[str, str]]
) -> None:
    if element is None or is_complex(element.types[0]) or element.types[0] == RESOURCE:
        problems.append((path, "unknown element"))
        return
    for item in value if isinstance(value, list) else [value]:
        if item is None:
            continue
        if not isinstance(item, dict):
            problems.append((path, "must be an object"))
            continue
        # The Element part of a primitive: an id and extensions, nothing else.
        for key, part in item.items():
            if key == "id":
                _check_value("string", part, f"{path}.id", problems)
            elif key == "extension" and isinstance(part, list):
                for index, extension in enumerate(part):
                    _check_value("Extension", extension, f"{path}.extension[{index}]", problems)
            else:
                problems.append((f"{path}.{key}", "unknown element"))


def _check_value(type_name: str, value: Any, path: str, problems: list[tuple[str, str]]) -> None:
    if type_name == RESOURCE:
        contained_type = value.get("resourceType") if isinstance(value, dict) else None
        if not isinstance(contained_type, str):
            problems.append((path, "must be a resource with a resourceType"))
        elif is_complex(contained_type):
            _check_object(contained_type, value, path, problems, is_resource=True)
    elif is_complex(type_name):
        if isinstance(value, dict):
            _check_object(type_name, value, path, problems)
        else:
            problems.append((path, "must be an object"))
    elif type_name in _BOOLEAN:
        if not isinstance(value, bool):
            problems.append((path, "must be a boolean"))
    elif type_name in _INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((path, "must be an integer"))
    elif type_name in _DECIMAL:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            problems.append((path, "must be a number"))
    elif not isinstance(value, str):
        problems.append((path, "must be a string"))
