"""Validate a resource against a StructureDefinition by interpreting its snapshot.

Nothing here is written for a particular profile. The walk goes from the root node down the JSON, and
at each element it checks what the snapshot says:

- cardinality (``min``/``max``) of elements and of slices;
- types: the JSON key of a choice element must name one of its allowed types, and a reference must
  point at one of the target types;
- ``fixed[x]`` (equal) and ``pattern[x]`` (the value contains the pattern);
- required bindings, against the value sets of ``terminology/`` and of the R4 spec;
- slicing: each repetition is assigned to the slice whose discriminators (``value``/``pattern`` on a
  path such as ``system`` or ``url``) it matches, and validated against that slice; with closed
  slicing, a repetition that fits no slice is an error;
- invariants (``constraint.expression``) in FHIRPath, evaluated by fhirpathpy (:mod:`.invariants`).

Elements the snapshot does not unroll are validated against their type's base definition (and the
profiles the type names, such as an extension's definition); extensions whose url is a known
StructureDefinition are validated against it.

Two strengths. *Full* applies everything. *Vocabulary* is what the server applies to every write of a
type that has a DMP profile the resource does not claim: only the DMP's own vocabulary — a coding whose
system belongs to a DMP value set the profile binds must be one of its codes, in extensions and
slices too; nothing is required to be present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fhir_server.fhir.errors import Issue
from fhir_server.profiles import invariants
from fhir_server.profiles.structure import Node, Structure

if TYPE_CHECKING:
    from fhir_server.profiles.registry import Profiles

Json = dict[str, Any]
_FHIR_SD = "http://hl7.org/fhir/StructureDefinition/"
_REFERENCE_TYPES = ("Reference",)


@dataclass(frozen=True, slots=True)
class _Item:
    """One value of an element: the JSON value, its FHIRPath and its type code."""

    value: Any
    expr: str
    type_code: str


def validate(resource: Json, structure: Structure, profiles: Profiles, full: bool = True) -> list[Issue]:
    """The issues of ``resource`` against ``structure`` (errors and warnings), in document order."""
    run = _Run(resource, profiles, full)
    rtype = str(resource.get("resourceType", structure.type))
    run.instance(structure, structure.root, _Item(resource, rtype, rtype))
    return run.issues


def matches_pattern(value: Any, pattern: Any) -> bool:
    """Whether ``value`` contains ``pattern``: every key of a pattern object is matched, every item of
    a pattern array is matched by some item, primitives are equal."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches_pattern(value[k], v) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches_pattern(v, p) for v in items) for p in pattern)
    return bool(value == pattern)


class _Run:
    def __init__(self, resource: Json, profiles: Profiles, full: bool) -> None:
        self.resource = resource
        self.profiles = profiles
        self.full = full
        self.issues: list[Issue] = []

    def _issue(self, code: str, message: str, expr: str, severity: str = "error") -> None:
        self.issues.append(Issue(code, f"{expr}: {message}", severity=severity, expression=expr))

    # -- one value against one node ----------------------------------------------------------------

    def instance(self, structure: Structure, node: Node, item: _Item) -> None:
        """Check ``item`` against ``node`` (its own rules, then its children)."""
        if self.full:
            self._fixed_and_pattern(structure, node, item)
            self._target(node, item)
        if node.binding:
            self._binding(node.binding, item)
        if self.full:
            self._invariants(node, item, structure)
        if isinstance(item.value, dict):
            self._children(structure, node, item)
        for ref in node.types:
            if ref.code == item.type_code:
                for url in ref.profiles:
                    other = self.profiles.structure(url)
                    if other is not None and other.url != structure.url:
                        self.instance(other, other.root, item)

    def _fixed_and_pattern(self, structure: Structure, node: Node, item: _Item) -> None:
        if node.fixed is not None and item.value != node.fixed[1]:
            self._issue(
                "value", f"must be exactly {node.fixed[1]!r} ({structure.name} {node.label})", item.expr
            )
        if node.pattern is not None and not matches_pattern(item.value, node.pattern[1]):
            self._issue("value", f"must match {node.pattern[1]!r} ({structure.name} {node.label})", item.expr)

    def _target(self, node: Node, item: _Item) -> None:
        if item.type_code not in _REFERENCE_TYPES or not isinstance(item.value, dict):
            return
        ref = next((t for t in node.types if t.code == item.type_code), None)
        literal = item.value.get("reference")
        if ref is None or not ref.targets or not isinstance(literal, str):
            return
        parts = literal.split("/")
        if literal.startswith(("#", "urn:")) or len(parts) < 2:
            return
        # ``Type/id``, ``Type/id/_history/n`` or an absolute URL ending so.
        rtype = parts[-4] if len(parts) >= 4 and parts[-2] == "_history" else parts[-2]
        if not self.profiles.is_resource_type(rtype):
            return  # a URL outside FHIR (``http://host/prescription/1``): nothing to say about it
        allowed = {self.profiles.type_of(t) for t in ref.targets}
        if "Resource" not in allowed and rtype not in allowed:
            self._issue(
                "structure",
                f"a reference to {rtype} where {', '.join(sorted(allowed))} is expected",
                item.expr,
            )

    def _invariants(
        self, node: Node, item: _Item, structure: Structure, skip: set[str] | frozenset[str] = frozenset()
    ) -> None:
        type_path = _type_path(node, item, structure)
        for c in node.constraints:
            if c.key in skip:
                continue
            if invariants.holds(c.key, c.expression, item.value, type_path, self.resource) is False:
                severity = "warning" if c.severity == "warning" else "error"
                self._issue("invariant", f"{c.key}: {c.human} ({c.expression})", item.expr, severity)

    # -- bindings ----------------------------------------------------------------------------------

    def _binding(self, url: str, item: _Item) -> None:
        terms = self.profiles.terminology
        if not self.full and not terms.is_local(url):
            return
        value = item.value
        if item.type_code == "code" and isinstance(value, str):
            if terms.contains(url, None, value) is False:
                self._issue(
                    "code-invalid", f"code '{value}' is not in the required value set {url}", item.expr
                )
        elif item.type_code == "Coding" and isinstance(value, dict):
            self._codings(url, [value], item.expr, single=True)
        elif item.type_code == "CodeableConcept" and isinstance(value, dict):
            codings = [c for c in value.get("coding", ()) if isinstance(c, dict)]
            if not self.full:
                self._codings(url, codings, f"{item.expr}.coding", single=False)
                return
            coded = [c for c in codings if isinstance(c.get("code"), str)]
            if not coded and "text" not in value:
                return  # only extensions (data-absent-reason): nothing coded, nothing said
            if not any(terms.contains(url, c.get("system"), c["code"]) is not False for c in coded):
                found = ", ".join(f"{c.get('system', '')}|{c['code']}" for c in coded) or "no coding"
                self._issue(
                    "code-invalid",
                    f"none of the codes ({found}) is in the required value set {url}",
                    item.expr,
                )

    def _codings(self, url: str, codings: list[Json], expr: str, single: bool) -> None:
        """Each coding (of a DMP system, when not full) must be in the value set ``url``."""
        terms = self.profiles.terminology
        own = terms.own_systems(url)
        for i, coding in enumerate(codings):
            code, system = coding.get("code"), coding.get("system")
            if not isinstance(code, str) or (not self.full and system not in own):
                continue
            if terms.contains(url, system, code) is False:
                where = expr if single else f"{expr}[{i}]"
                self._issue(
                    "code-invalid", f"code '{system}|{code}' is not in the required value set {url}", where
                )

    # -- children ----------------------------------------------------------------------------------

    def _children(self, structure: Structure, node: Node, item: _Item) -> None:
        obj: Json = item.value
        owner, children = self._definition_of(structure, node, item)
        if owner is not None and owner is not structure and self.full:
            # Not unrolled here: the type's own definition (its root's rules included) applies.
            self._invariants(owner.root, item, owner, skip={c.key for c in node.constraints})
        if owner is None:
            return
        for child in children.values():
            items = self._items(child, obj, item.expr)
            self._element(owner, child, items, f"{item.expr}.{child.json_name}")

    def _definition_of(
        self, structure: Structure, node: Node, item: _Item
    ) -> tuple[Structure | None, dict[str, Node]]:
        """Where the children of ``node`` are defined: here, at a content reference, or by its type."""
        if node.children:
            return structure, node.children
        if node.content_reference:
            target = structure.node_at(node.content_reference.lstrip("#").split("#")[-1])
            if target is not None:
                return structure, target.children
        if not self.full:
            return None, {}
        if item.type_code == "Resource" or (node is not structure.root and "resourceType" in item.value):
            base = self.profiles.base(str(item.value.get("resourceType", "")))
        else:
            base = self.profiles.base(item.type_code)
        if base is None or base is structure:
            return None, {}
        return base, base.root.children

    def _items(self, child: Node, obj: Json, expr: str) -> list[_Item]:
        """The values of ``child`` in ``obj`` (both the JSON key and its ``_key`` extension twin)."""
        out: list[_Item] = []
        keys = (
            [(k, k[len(child.json_name) :]) for k in obj if self._is_choice_key(child, k)]
            if child.is_choice
            else [(child.name, "")]
        )
        for key, suffix in keys:
            type_code = self._choice_type(suffix) if suffix else (child.types[0].code if child.types else "")
            value = obj.get(key, obj.get(f"_{key}"))
            if value is None:
                continue
            base = f"{expr}.{child.json_name}"
            if isinstance(value, list):
                out += [_Item(v, f"{base}[{i}]", type_code) for i, v in enumerate(value) if v is not None]
            else:
                out.append(_Item(value, base, type_code))
        return out

    def _choice_type(self, suffix: str) -> str:
        """The type a choice key names: ``Coding`` in ``valueCoding``, ``string`` in ``valueString``."""
        return suffix if self.profiles.is_type(suffix) else _lower_first(suffix)

    def _is_choice_key(self, child: Node, key: str) -> bool:
        name = child.json_name
        return (
            key.startswith(name)
            and len(key) > len(name)
            and key[len(name)].isupper()
            and self.profiles.is_type(self._choice_type(key[len(name) :]))
        )

    def _element(self, structure: Structure, node: Node, items: list[_Item], expr: str) -> None:
        """All the values of one element: cardinality, types, slices, then each value."""
        if self.full:
            self._cardinality(structure, node, len(items), expr)
            allowed = {t.code for t in node.types}
            for it in items:
                if node.is_choice and it.type_code not in allowed:
                    self._issue(
                        "structure",
                        f"type {it.type_code} is not allowed here ({structure.name} {node.label} allows "
                        f"{', '.join(sorted(allowed))})",
                        it.expr,
                    )
        if node.slices:
            items = self._slices(structure, node, items, expr)
        named = {u for t in node.types for u in t.profiles}
        for it in items:
            self.instance(structure, node, it)
            if node.name in {"extension", "modifierExtension"}:
                self._known_extension(structure, it, named)

    def _cardinality(self, structure: Structure, node: Node, count: int, expr: str) -> None:
        where = f"{structure.name} {node.label}"
        if count < node.min:
            self._issue("required", f"at least {node.min} required, found {count} ({where})", expr)
        if node.max is not None and count > node.max:
            self._issue("structure", f"at most {node.max} allowed, found {count} ({where})", expr)

    def _known_extension(self, structure: Structure, item: _Item, named: set[str]) -> None:
        """An extension whose url is a known definition (not already named by the element's type) is
        validated against it."""
        url = item.value.get("url") if isinstance(item.value, dict) else None
        if not isinstance(url, str) or url in named:
            return
        other = self.profiles.structure(url)
        if other is not None and other.url != structure.url and other.type == "Extension":
            self.instance(other, other.root, item)

    # -- slicing -----------------------------------------------------------------------------------

    def _slices(self, structure: Structure, node: Node, items: list[_Item], expr: str) -> list[_Item]:
        """Validate the values that fall into a slice; return the others (validated by the caller)."""
        rest: list[_Item] = []
        matched: dict[str, list[_Item]] = {s.id: [] for s in node.slices}
        for it in items:
            target = next((s for s in node.slices if self._fits(structure, node, s, it.value)), None)
            if target is None:
                rest.append(it)
            else:
                matched[target.id].append(it)
        for piece in node.slices:
            if self.full:
                self._cardinality(structure, piece, len(matched[piece.id]), expr)
            named = {u for t in piece.types for u in t.profiles}
            for it in matched[piece.id]:
                self.instance(structure, piece, it)
                if piece.name in {"extension", "modifierExtension"}:
                    self._known_extension(structure, it, named)
        if self.full and node.slicing is not None and node.slicing.rules == "closed":
            for it in rest:
                self._issue("structure", f"fits none of the slices of {node.label} (closed slicing)", it.expr)
        return rest

    def _fits(self, structure: Structure, node: Node, piece: Node, value: Any) -> bool:
        if node.slicing is None or not node.slicing.discriminators:
            return False
        for kind, path in node.slicing.discriminators:
            if kind not in {"value", "pattern"}:
                return False
            expected = self._expected_at(structure, piece, path)
            if expected is None:
                return False
            how, wanted = expected
            actual = _at_path(value, path)
            if not (actual == wanted if how == "fixed" else matches_pattern(actual, wanted)):
                return False
        return True

    def _expected_at(self, structure: Structure, piece: Node, path: str) -> tuple[str, Any] | None:
        """The fixed or pattern value a slice sets at a discriminator path (in the slice, or in the
        profile its type names: an extension's ``url``)."""
        roots: list[Node] = [piece]
        for ref in piece.types:
            roots += [s.root for u in ref.profiles if (s := self.profiles.structure(u)) is not None]
        for root in roots:
            node: Node | None = root
            for part in [] if path == "$this" else path.split("."):
                node = node.children.get(part) if node is not None else None
            if node is not None and node.fixed is not None:
                return "fixed", node.fixed[1]
            if node is not None and node.pattern is not None:
                return "pattern", node.pattern[1]
        return None


def _at_path(value: Any, path: str) -> Any:
    if path == "$this":
        return value
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _type_path(node: Node, item: _Item, structure: Structure) -> str:
    """The type fhirpathpy should see the value as: a datatype, or the path of a backbone element."""
    code = item.type_code
    if node is structure.root:
        return structure.type if structure.kind != "resource" else str(item.value.get("resourceType", code))
    if code in {"BackboneElement", "Element"} or not code:
        return node.path
    return code
