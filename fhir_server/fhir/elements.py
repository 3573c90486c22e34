"""Subsets of a resource for the ``_summary`` and ``_elements`` result parameters (FHIR R4 search).

``_summary=true`` keeps the top-level elements marked ``isSummary``, ``text`` keeps the narrative,
``data`` drops it, ``false`` changes nothing; ``_elements`` keeps the listed top-level elements. Every
subset keeps ``resourceType``, ``id``, ``meta`` and the mandatory (min ≥ 1) top-level elements, and an
element's primitive extensions (``_birthDate``) go with it. When something was actually left out the
result is tagged ``SUBSETTED``, as the spec asks, so that it is never taken for the whole resource
(e.g. by a client that edits and PUTs it back). The input is never modified.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_server.fhir import typemodel

SUBSETTED_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
SUBSETTED_CODE = "SUBSETTED"
SUMMARY_MODES = frozenset({"true", "text", "data", "false"})

_ALWAYS_KEPT = frozenset({"resourceType", "id", "meta"})


def summarize(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """``resource`` as ``_summary=<mode>`` asks; ``count`` is a search concern, not handled here."""
    if mode not in SUMMARY_MODES:
        raise ValueError(f"unknown _summary mode {mode!r}")
    if mode == "false":
        return dict(resource)
    if mode == "data":
        return _subset(resource, set(resource) - {"text"})
    type_name = str(resource.get("resourceType", ""))
    kept = set(_ALWAYS_KEPT | typemodel.mandatory_keys(type_name))
    if mode == "text":
        kept.add("text")
    else:
        kept |= typemodel.summary_keys(type_name)
    return _subset(resource, kept)


def select_elements(resource: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``resource`` as ``_elements=<names>`` asks; names are ``birthDate``, ``Patient.birthDate`` or
    a choice by its base name (``deceased``, ``deceased[x]``)."""
    type_name = str(resource.get("resourceType", ""))
    wanted: set[str] = set()
    for raw in names:
        name = raw.strip()
        prefix, dot, rest = name.partition(".")
        if dot:
            if prefix != type_name:
                continue  # asked of another type in a multi-type search
            # Only top-level elements can be selected in R4: a deeper path keeps its whole element.
            name = rest.split(".", 1)[0]
        wanted.add(name.removesuffix("[x]"))
    kept = set(_ALWAYS_KEPT | typemodel.mandatory_keys(type_name))
    defs = typemodel.elements(type_name) or {}
    for key in resource:
        element = defs.get(key)
        if key in wanted or (element is not None and element.path_name in wanted):
            kept.add(key)
    return _subset(resource, kept)


def _subset(resource: dict[str, Any], kept: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dropped = False
    for key, value in resource.items():
        if key in kept or (key.startswith("_") and key[1:] in kept):
            out[key] = value
        else:
            dropped = True
    if dropped:
        out["meta"] = _tag_subsetted(resource.get("meta"))
    return out


def _tag_subsetted(meta: Any) -> dict[str, Any]:
    new_meta: dict[str, Any] = dict(meta) if isinstance(meta, dict) else {}
    tags = list(new_meta.get("tag") or [])
    if not any(
        isinstance(t, dict) and t.get("system") == SUBSETTED_SYSTEM and t.get("code") == SUBSETTED_CODE
        for t in tags
    ):
        tags.append({"system": SUBSETTED_SYSTEM, "code": SUBSETTED_CODE, "display": "subsetted"})
    new_meta["tag"] = tags
    return new_meta
