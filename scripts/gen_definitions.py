"""Generate the compact FHIR R4 definitions the server reads at run time.

Reads HL7's definitions (``../shared/fhir-r4`` by default) and writes into ``fhir_server/definitions/``:

- ``search_parameters.json``: ``{type: {code: {url, type, expression, target, modifier, comparator,
  chain, component}}}`` for every served type, the Resource/DomainResource parameters included. A
  multi-base expression keeps only the alternatives rooted at that type; a ``Resource.x`` root is
  rewritten to ``Type.x`` so every expression starts with the type it applies to.
- ``compartment_patient.json``: ``{type: [param codes]}`` for served types in the Patient compartment.
- ``types.json``: ``{type: {element: {types, array, summary, min, binding?}}}`` for served resources and
  every complex datatype reachable from them. Backbone elements are anonymous types named by their
  path (``Patient.contact``); ``contentReference`` elements point at the referenced path's type. Choice
  elements stay under their ``name[x]`` key with every allowed type; ``fhir_server.fhir.typemodel``
  expands them to JSON keys. An element of type ``Resource`` holds a resource typed by its own
  ``resourceType``. Types absent from this file are primitives.
- ``valuesets.json``: ``{url: {"codes": {system: [codes]}}}`` for the value sets of required bindings,
  or ``{url: {"open": true}}`` when the data cannot enumerate them (external code systems, unsupported
  filters), so that they are never checked.

Output is deterministic (sorted keys, compact separators): rerun and commit when the inputs change.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fhir_server.fhir.registry import SERVED_TYPES

_ABSTRACT_BASES = ("Resource", "DomainResource")
_CORE_VERSION = "4.0.1"
_FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
# Types that carry no element model of their own: BackboneElement/Element only ever appear on elements
# that have children (made anonymous types), and a Resource is typed by its resourceType.
_NOT_MODELLED = {"Resource", "Element", "BackboneElement"}

_REPO = Path(__file__).resolve().parent.parent
_OUT = _REPO / "fhir_server" / "definitions"

Json = dict[str, Any]


def _bundle_resources(path: Path) -> list[Json]:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _strip_version(canonical: str) -> str:
    return canonical.split("|", 1)[0]


# --- search parameters -----------------------------------------------------------------------------


def _split_alternatives(expression: str) -> list[str]:
    """Split a FHIRPath union at its top-level ``|`` (not inside parentheses or string literals)."""
    parts: list[str] = []
    depth, start, quoted = 0, 0, False
    for i, ch in enumerate(expression):
        if ch == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


_ROOT = re.compile(r"^\(*\s*([A-Za-z]+)\.")


def _expression_for(expression: str, type_name: str) -> str | None:
    kept = []
    for alt in _split_alternatives(expression):
        match = _ROOT.match(alt)
        if match is None:
            continue
        root = match.group(1)
        if root == type_name:
            kept.append(alt)
        elif root in _ABSTRACT_BASES:
            kept.append(alt[: match.start(1)] + type_name + alt[match.end(1) :])
    return " | ".join(kept) or None


def build_search_parameters(params: list[Json]) -> Json:
    out: dict[str, Json] = {t: {} for t in SERVED_TYPES}
    for sp in params:
        # The source bundle also carries HL7's *example* SearchParameters (no or another version).
        if sp.get("version") != _CORE_VERSION:
            continue
        bases = sp["base"]
        targets = [t for t in SERVED_TYPES if t in bases or any(b in _ABSTRACT_BASES for b in bases)]
        for type_name in targets:
            entry: Json = {"url": sp["url"], "type": sp["type"]}
            if "expression" in sp:
                expression = _expression_for(sp["expression"], type_name)
                if expression is None:
                    raise SystemExit(f"{sp['url']}: no expression alternative applies to {type_name}")
                entry["expression"] = expression
            for key in ("target", "modifier", "comparator", "chain"):
                if sp.get(key):
                    entry[key] = sp[key]
            if sp.get("component"):
                entry["component"] = [
                    {"definition": c["definition"], "expression": c["expression"]} for c in sp["component"]
                ]
            if sp["code"] in out[type_name]:
                raise SystemExit(f"duplicate search parameter {type_name}.{sp['code']}")
            out[type_name][sp["code"]] = entry
    return out


def build_compartment(compartment: Json) -> Json:
    served = set(SERVED_TYPES)
    return {
        r["code"]: r["param"]
        for r in compartment.get("resource", [])
        if r["code"] in served and r.get("param")
    }


# --- types ------------------------------------------------------------------------------------------


def _type_code(type_ref: Json) -> str:
    code: str = type_ref["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        # Primitive values and ids are typed with FHIRPath system types; the extension names the FHIR one.
        for ext in type_ref.get("extension", []):
            if ext.get("url") == _FHIR_TYPE_EXT:
                return str(ext["valueUrl"])
        return code.rsplit(".", 1)[1].lower()
    return code


def _model_of(sd: Json) -> dict[str, Json]:
    """The types one StructureDefinition defines: itself plus its anonymous backbone types."""
    elements = sd["snapshot"]["element"]
    paths = {el["path"] for el in elements}
    parents = {p.rsplit(".", 1)[0] for p in paths if "." in p}
    model: dict[str, Json] = {sd["type"]: {}}
    for el in elements:
        path = el["path"]
        if "." not in path:
            continue
        parent, name = path.rsplit(".", 1)
        if "contentReference" in el:
            types = [el["contentReference"].lstrip("#")]
        elif path in parents:
            types = [path]
            model.setdefault(path, {})
        else:
            types = [_type_code(t) for t in el.get("type", [])]
        definition: Json = {
            "types": types,
            "array": el["max"] != "1",
            "summary": bool(el.get("isSummary", False)),
            "min": el["min"],
        }
        binding = el.get("binding", {})
        if binding.get("strength") == "required" and "valueSet" in binding:
            definition["binding"] = _strip_version(binding["valueSet"])
        model.setdefault(parent, {})[name] = definition
    return model


def build_types(sd_dir: Path) -> Json:
    by_type = {}
    for path in sorted(sd_dir.glob("*.json")):
        sd = json.loads(path.read_text(encoding="utf-8"))
        if sd.get("kind") != "primitive-type":
            by_type[sd["type"]] = sd
    out: dict[str, Json] = {}
    pending = list(SERVED_TYPES)
    while pending:
        name = pending.pop()
        if name in out or name in _NOT_MODELLED:
            continue
        if name not in by_type:
            raise SystemExit(f"no StructureDefinition for reachable type {name}")
        model = _model_of(by_type[name])
        out.update(model)
        for elements in model.values():
            for definition in elements.values():
                pending.extend(t for t in definition["types"] if t[:1].isupper() and t not in model)
    return out


# --- value sets -------------------------------------------------------------------------------------

Codes = dict[str, set[str]]


class _Unenumerable(Exception):
    """The value set draws on something the data cannot list (external system, unsupported filter)."""


def _walk_concepts(concepts: Iterable[Json], parent: str | None = None) -> Iterator[tuple[str, str | None]]:
    """Yield ``(code, parent)`` for every concept, nested ones included (``parent`` None at the top)."""
    for concept in concepts:
        code = concept["code"]
        yield code, parent
        for prop in concept.get("property", []):
            # Some code systems state their hierarchy as properties rather than by nesting.
            if prop.get("code") in ("parent", "subsumedBy") and "valueCode" in prop:
                yield code, prop["valueCode"]
        yield from _walk_concepts(concept.get("concept", []), code)


class _Terminology:
    def __init__(self, valuesets: list[Json], codesystems: list[Json]) -> None:
        self._valuesets = {vs["url"]: vs for vs in valuesets}
        self._codesystems = {cs["url"]: cs for cs in codesystems}

    def _concepts(self, system: str) -> list[Json]:
        cs = self._codesystems.get(system)
        if cs is None or cs.get("content") != "complete":
            raise _Unenumerable(system)
        return list(cs.get("concept", []))

    def _all_codes(self, system: str) -> set[str]:
        return {code for code, _ in _walk_concepts(self._concepts(system))}

    def _descendants(self, system: str, root: str, include_self: bool) -> set[str]:
        children: dict[str, set[str]] = {}
        for code, parent in _walk_concepts(self._concepts(system)):
            if parent is not None:
                children.setdefault(parent, set()).add(code)
        found: set[str] = set()
        pending = [root]
        while pending:
            for child in children.get(pending.pop(), ()):
                if child not in found:
                    found.add(child)
                    pending.append(child)
        return found | {root} if include_self else found - {root}

    def _apply_filter(self, system: str, codes: set[str], flt: Json) -> set[str]:
        op, prop, value = flt.get("op"), flt.get("property"), flt.get("value", "")
        if prop != "concept":
            raise _Unenumerable(f"{system} filter on {prop}")
        if op == "is-a":
            return codes & self._descendants(system, value, include_self=True)
        if op == "descendent-of":
            return codes & self._descendants(system, value, include_self=False)
        if op == "is-not-a":
            return codes - self._descendants(system, value, include_self=True)
        if op == "in":
            return codes & {v.strip() for v in value.split(",")}
        if op == "=":
            return codes & {value}
        raise _Unenumerable(f"{system} filter {op}")

    def _set_codes(self, component: Json, seen: frozenset[str]) -> Codes:
        result: Codes | None = None
        system = component.get("system")
        if system:
            # An explicit concept list needs no code system (units-of-time lists UCUM codes).
            if component.get("concept"):
                codes = {c["code"] for c in component["concept"]}
            else:
                codes = self._all_codes(system)
            for flt in component.get("filter", []):
                codes = self._apply_filter(system, codes, flt)
            result = {system: codes}
        for url in component.get("valueSet", []):
            imported = self.expand(_strip_version(url), seen)
            if result is None:
                result = imported
            else:
                result = {s: c & imported.get(s, set()) for s, c in result.items()}
        if result is None:
            raise _Unenumerable("empty compose component")
        return result

    def expand(self, url: str, seen: frozenset[str] = frozenset()) -> Codes:
        vs = self._valuesets.get(url)
        if vs is None or url in seen:
            raise _Unenumerable(url)
        seen = seen | {url}
        compose = vs.get("compose", {})
        codes: Codes = {}
        for component in compose.get("include", []):
            for system, found in self._set_codes(component, seen).items():
                codes.setdefault(system, set()).update(found)
        for component in compose.get("exclude", []):
            try:
                excluded = self._set_codes(component, seen)
            except _Unenumerable:
                # Ignoring an exclusion we cannot list only lets more codes through, never fewer.
                continue
            for system, found in excluded.items():
                codes.get(system, set()).difference_update(found)
        return codes


def build_valuesets(types: Json, terminology: _Terminology) -> Json:
    urls = {d["binding"] for elements in types.values() for d in elements.values() if "binding" in d}
    out: Json = {}
    for url in sorted(urls):
        try:
            codes = terminology.expand(url)
        except _Unenumerable:
            out[url] = {"open": True}
            continue
        out[url] = {"codes": {system: sorted(found) for system, found in codes.items() if found}}
    return out


# --- main -------------------------------------------------------------------------------------------


def _write(name: str, data: Json) -> None:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    (_OUT / name).write_text(text + "\n", encoding="utf-8")
    print(f"wrote {name}: {len(text) + 1} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=_REPO.parent / "shared" / "fhir-r4")
    args = parser.parse_args(argv)
    source: Path = args.source
    if not source.is_dir():
        parser.error(f"no FHIR definitions at {source}")

    _OUT.mkdir(parents=True, exist_ok=True)
    _write(
        "search_parameters.json",
        build_search_parameters(_bundle_resources(source / "search-parameters.json")),
    )
    compartment = json.loads((source / "compartment-patient.json").read_text(encoding="utf-8"))
    _write("compartment_patient.json", build_compartment(compartment))
    types = build_types(source / "structuredefinitions")
    _write("types.json", types)
    terminology = _Terminology(
        _bundle_resources(source / "terminology" / "required-valuesets.json"),
        _bundle_resources(source / "terminology" / "codesystems.json"),
    )
    _write("valuesets.json", build_valuesets(types, terminology))
    return 0


if __name__ == "__main__":
    sys.exit(main())
