"""Generate the DMP StructureDefinitions (with snapshots) and the compact base structures.

Inputs: the differentials in ``profiles/differentials/*.json`` (a StructureDefinition's metadata and its
``differential.element``, nothing else) and HL7's base snapshots (``../shared/fhir-r4/structuredefinitions``
by default). Outputs:

- ``profiles/StructureDefinition-<id>.json``: each profile with its differential and a snapshot made
  by applying the differential to the base snapshot (the profile named by ``baseDefinition``: a base
  type, or another profile of this folder). A differential element whose id is not in the snapshot is
  either a slice (``Patient.identifier:INS-NIR``, inserted after the sliced element's subtree as a
  copy of it) or an element inside a datatype the snapshot has not unrolled yet
  (``Patient.identifier:INS-NIR.system``), in which case the datatype's elements are unrolled under
  their parent first. Constraints are appended (with ``source`` the profile), other properties replace
  the base ones; choice types renamed with ``[x]`` stay as they are.
- ``fhir_server/definitions/structures.json``: every base StructureDefinition reduced to what the
  validator reads (url, type, kind, and per element: id, path, sliceName, min, max, type, fixed and
  pattern values, required bindings, constraints, slicing, contentReference), so the server can
  validate against the base profiles without ``../shared``.

Output is deterministic: rerun and commit when a differential or the base changes.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

Json = dict[str, Any]
_REPO = Path(__file__).resolve().parent.parent
_FHIR = "http://hl7.org/fhir/StructureDefinition/"
_KEPT = ("id", "path", "sliceName", "min", "max", "type", "slicing", "contentReference")
_PUBLISHER = "dmp-fhir"
_DATE = "2026-12-07"


def _load_bases(folder: Path) -> dict[str, Json]:
    out = {}
    for path in sorted(folder.glob("*.json")):
        sd = json.loads(path.read_text(encoding="utf-8"))
        out[sd["url"]] = sd
    return out


def _parent_id(eid: str) -> str:
    return eid.rsplit(".", 1)[0]


def _subtree_end(elements: list[Json], index: int) -> int:
    """The index just past the element at ``index`` and everything under it (its slices included)."""
    eid = elements[index]["id"]
    end = index + 1
    while end < len(elements):
        other = elements[end]["id"]
        if not (other.startswith(eid + ".") or other.startswith(eid + ":")):
            break
        end += 1
    return end


def _index(elements: list[Json], eid: str) -> int:
    for i, element in enumerate(elements):
        if element["id"] == eid:
            return i
    return -1


def _type_name(element: Json) -> str:
    types = element.get("type") or []
    if len(types) != 1:
        raise SystemExit(f"{element['id']}: cannot unroll an element with {len(types)} types")
    return str(types[0]["code"])


def _unroll(elements: list[Json], parent: int, bases: dict[str, Json]) -> None:
    """Insert the elements of the parent's datatype under it (ids and paths re-rooted)."""
    owner = elements[parent]
    type_name = _type_name(owner)
    base = bases.get(_FHIR + type_name)
    if base is None:
        raise SystemExit(f"{owner['id']}: no base definition for {type_name}")
    children = []
    for element in base["snapshot"]["element"][1:]:
        child = copy.deepcopy(element)
        rest = element["id"][len(type_name) :]
        child["id"] = owner["id"] + rest
        child["path"] = owner["path"] + element["path"][len(type_name) :]
        children.append(child)
    elements[parent + 1 : parent + 1] = children


def _ensure(elements: list[Json], eid: str, bases: dict[str, Json]) -> int:
    """The index of element ``eid``, creating the slice or unrolling the datatype it needs."""
    found = _index(elements, eid)
    if found >= 0:
        return found
    parent_id, last = _parent_id(eid), eid.rsplit(".", 1)[1]
    if ":" in last:
        name, slice_name = last.split(":", 1)
        sliced = _ensure(elements, f"{parent_id}.{name}", bases)
        element = copy.deepcopy(elements[sliced])
        element.pop("slicing", None)
        element["id"] = eid
        element["sliceName"] = slice_name
        end = _subtree_end(elements, sliced)
        elements.insert(end, element)
        return end
    parent = _ensure(elements, parent_id, bases)
    if _subtree_end(elements, parent) == parent + 1:
        _unroll(elements, parent, bases)
    found = _index(elements, eid)
    if found < 0:
        raise SystemExit(f"{eid}: no such element in the base")
    return found


def _apply(element: Json, diff: Json, url: str) -> None:
    for key, value in diff.items():
        if key in {"id", "path"}:
            continue
        if key == "constraint":
            element["constraint"] = [*element.get("constraint", []), *({**c, "source": url} for c in value)]
        else:
            element[key] = copy.deepcopy(value)


def build_profile(spec: Json, bases: dict[str, Json]) -> Json:
    """A StructureDefinition (differential and snapshot) for the differential ``spec``."""
    base = bases[spec["baseDefinition"]]
    url = spec["url"]
    elements = copy.deepcopy(base["snapshot"]["element"])
    for diff in spec["differential"]["element"]:
        _apply(elements[_ensure(elements, diff["id"], bases)], diff, url)
    out: Json = {
        "resourceType": "StructureDefinition",
        "id": spec["id"],
        "url": url,
        "version": spec.get("version", "1.0.0"),
        "name": spec["name"],
        "title": spec["title"],
        "status": "active",
        "experimental": False,
        "date": _DATE,
        "publisher": _PUBLISHER,
        "description": spec["description"],
        "fhirVersion": "4.0.1",
        "kind": base["kind"],
        "abstract": False,
        **({"context": spec["context"]} if "context" in spec else {}),
        "type": base["type"],
        "baseDefinition": spec["baseDefinition"],
        "derivation": "constraint",
        "snapshot": {"element": elements},
        "differential": spec["differential"],
    }
    return out


def _compact_element(element: Json) -> Json:
    out = {k: element[k] for k in _KEPT if k in element}
    for key, value in element.items():
        if key.startswith(("fixed", "pattern")):
            out[key] = value
    binding = element.get("binding")
    if binding and binding.get("strength") == "required" and "valueSet" in binding:
        out["binding"] = {"strength": "required", "valueSet": binding["valueSet"]}
    constraints = [
        {k: c[k] for k in ("key", "severity", "human", "expression", "source") if k in c}
        for c in element.get("constraint", [])
        if "expression" in c
    ]
    if constraints:
        out["constraint"] = constraints
    if "type" in out:
        out["type"] = [
            {k: t[k] for k in ("code", "profile", "targetProfile") if k in t} for t in element["type"]
        ]
    return out


def compact_base(sd: Json) -> Json:
    """The base StructureDefinition ``sd`` reduced to what the validator reads."""
    return {
        "resourceType": "StructureDefinition",
        "url": sd["url"],
        "name": sd["name"],
        "kind": sd["kind"],
        "type": sd["type"],
        "snapshot": {"element": [_compact_element(e) for e in sd["snapshot"]["element"]]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=_REPO.parent / "shared" / "fhir-r4")
    parser.add_argument("--profiles", type=Path, default=_REPO / "profiles")
    args = parser.parse_args()
    bases = _load_bases(args.shared / "structuredefinitions")
    specs = [
        json.loads(p.read_text("utf-8")) for p in sorted((args.profiles / "differentials").glob("*.json"))
    ]
    # A profile may derive from another one of the folder (e.g. an extension used by a resource
    # profile is not, but a profile of a profile is): build in dependency order.
    pending = {s["url"]: s for s in specs}
    while pending:
        ready = [s for s in pending.values() if s["baseDefinition"] in bases]
        if not ready:
            raise SystemExit(f"unknown baseDefinition in {sorted(pending)}")
        for spec in ready:
            sd = build_profile(spec, bases)
            bases[spec["url"]] = sd
            del pending[spec["url"]]
            target = args.profiles / f"StructureDefinition-{spec['id']}.json"
            target.write_text(json.dumps(sd, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    base_only = [compact_base(sd) for url, sd in sorted(bases.items()) if url.startswith(_FHIR)]
    out = _REPO / "fhir_server" / "definitions" / "structures.json"
    out.write_text(json.dumps(base_only, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
