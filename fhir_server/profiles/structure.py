"""StructureDefinition snapshots as trees the validator walks.

A snapshot is a flat list of ElementDefinitions ordered depth-first; ids say where each one sits
(``Patient.identifier:INS-NIR.system`` is the ``system`` child of the ``INS-NIR`` slice of
``Patient.identifier``). :func:`load_structure` turns it into :class:`Node` objects: each with its
children by element name and, for a sliced element, its slices (themselves nodes with children).
Nothing here knows a particular profile: everything comes from the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TypeRef:
    """One allowed type of an element, with the profiles it must conform to."""

    code: str
    profiles: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Constraint:
    """An invariant (``constraint``) of an element, with its FHIRPath expression."""

    key: str
    severity: str
    human: str
    expression: str
    source: str | None


@dataclass(frozen=True, slots=True)
class Slicing:
    """How a repeating element is divided into slices: discriminators as (type, path) pairs."""

    discriminators: tuple[tuple[str, str], ...]
    rules: str


@dataclass(slots=True)
class Node:
    """One element of a snapshot, with its children and slices."""

    id: str
    path: str
    name: str  # the element's own name: ``identifier``, ``value[x]``
    min: int
    max: int | None  # None for ``*``
    types: tuple[TypeRef, ...]
    fixed: tuple[str, Any] | None = None  # (type suffix, value): ("Uri", "urn:oid:…")
    pattern: tuple[str, Any] | None = None
    binding: str | None = None  # ValueSet canonical of a required binding (no version)
    constraints: tuple[Constraint, ...] = ()
    slicing: Slicing | None = None
    slice_name: str | None = None
    content_reference: str | None = None
    children: dict[str, Node] = field(default_factory=dict)
    slices: list[Node] = field(default_factory=list)

    @property
    def is_choice(self) -> bool:
        """Whether the element is a choice of types (``value[x]``)."""
        return self.name.endswith("[x]")

    @property
    def json_name(self) -> str:
        """The element's name without ``[x]``: the prefix of its JSON keys."""
        return self.name.removesuffix("[x]")

    @property
    def label(self) -> str:
        """How issues name the element: its id (``Patient.identifier:INS-NIR.value``)."""
        return self.id


@dataclass(slots=True)
class Structure:
    """A StructureDefinition ready for validation: its url, name, type and root node."""

    url: str
    name: str
    type: str
    kind: str
    root: Node
    by_path: dict[str, Node]

    def node_at(self, path: str) -> Node | None:
        """The node of a path without slices (``Patient.contact``): for ``contentReference``."""
        return self.by_path.get(path)


def _types(element: Json) -> tuple[TypeRef, ...]:
    return tuple(
        TypeRef(
            str(t.get("code", "")),
            tuple(p.split("|")[0] for p in t.get("profile", ())),
            tuple(p.split("|")[0] for p in t.get("targetProfile", ())),
        )
        for t in element.get("type", ())
    )


def _prefixed(element: Json, prefix: str) -> tuple[str, Any] | None:
    for key, value in element.items():
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix) :], value
    return None


def _binding(element: Json) -> str | None:
    binding = element.get("binding") or {}
    if binding.get("strength") == "required" and binding.get("valueSet"):
        return str(binding["valueSet"]).split("|")[0]
    return None


def _constraints(element: Json) -> tuple[Constraint, ...]:
    return tuple(
        Constraint(c["key"], c.get("severity", "error"), c.get("human", ""), c["expression"], c.get("source"))
        for c in element.get("constraint", ())
        if c.get("expression")
    )


def _slicing(element: Json) -> Slicing | None:
    raw = element.get("slicing")
    if not raw:
        return None
    discriminators = tuple((d["type"], d["path"]) for d in raw.get("discriminator", ()))
    return Slicing(discriminators, raw.get("rules", "open"))


def _node(element: Json) -> Node:
    eid = element["id"]
    last = eid.rsplit(".", 1)[-1]
    name = last.split(":", 1)[0]
    raw_max = element.get("max", "*")
    return Node(
        id=eid,
        path=element["path"],
        name=name,
        min=int(element.get("min", 0)),
        max=None if raw_max == "*" else int(raw_max),
        types=_types(element),
        fixed=_prefixed(element, "fixed"),
        pattern=_prefixed(element, "pattern"),
        binding=_binding(element),
        constraints=_constraints(element),
        slicing=_slicing(element),
        slice_name=element.get("sliceName"),
        content_reference=element.get("contentReference"),
    )


def load_structure(sd: Json) -> Structure:
    """The tree of a StructureDefinition's snapshot."""
    elements = (sd.get("snapshot") or {}).get("element") or []
    if not elements:
        raise ValueError(f"StructureDefinition {sd.get('url')} has no snapshot")
    nodes: dict[str, Node] = {}
    by_path: dict[str, Node] = {}
    root: Node | None = None
    for element in elements:
        node = _node(element)
        nodes[node.id] = node
        if ":" not in node.id:
            by_path.setdefault(node.path, node)
        if root is None:
            root = node
            continue
        parent_id, last = node.id.rsplit(".", 1)
        if ":" in last:
            sliced = nodes.get(f"{parent_id}.{last.split(':', 1)[0]}")
            if sliced is not None:
                sliced.slices.append(node)
            continue
        parent = nodes.get(parent_id)
        if parent is not None:
            parent.children[node.name] = node
    assert root is not None
    return Structure(
        url=sd["url"],
        name=sd.get("name", sd["url"]),
        type=sd["type"],
        kind=sd.get("kind", "resource"),
        root=root,
        by_path=by_path,
    )
