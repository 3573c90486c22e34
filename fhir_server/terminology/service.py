"""The code systems, value sets and concept maps of ``terminology/``, and what can be asked of them.

Every ``*.json`` file of the folder holding a CodeSystem, ValueSet or ConceptMap is loaded once (other
files, like the habilitation matrix, are left alone). A value set's ``compose.include`` entries are
either a list of concepts of a system or a whole system; a whole system whose CodeSystem has
``content: not-present`` (CCAM, CIP13…: too large to hold here) admits any code of that system, so
membership is then decided on the system alone. The R4 value sets of the base spec (required
bindings, from ``definitions/valuesets.json``) answer membership too, so one question — is this code
in that value set? — covers both the DMP's and HL7's.

Answers are ``True``, ``False`` or ``None`` ("cannot tell": an R4 value set the data cannot enumerate,
a fragment code system); callers treat ``None`` as "not refused".
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fhir_server.config import Settings
from fhir_server.fhir.bindings import r4_valueset

Json = dict[str, Any]
TYPES = ("CodeSystem", "ValueSet", "ConceptMap")


class TerminologyError(ValueError):
    """A value set that cannot be expanded (it draws on a code system whose codes are not held)."""


@dataclass(frozen=True, slots=True)
class Concept:
    """A code of a value set's expansion."""

    system: str
    code: str
    display: str | None


@dataclass(slots=True)
class _Expansion:
    concepts: list[Concept] = field(default_factory=list)
    open_systems: set[str] = field(default_factory=set)  # whole systems whose codes are not held
    partial: bool = False  # draws on a fragment: a code not listed may still be valid

    def lookup(self, system: str | None, code: str) -> Concept | None:
        return next(
            (c for c in self.concepts if c.code == code and (system is None or c.system == system)), None
        )


class Terminology:
    """The terminology resources of one folder, by type and id and by canonical url."""

    def __init__(self, resources: list[Json]) -> None:
        resources = [*resources, *_implicit_valuesets(resources)]
        self._resources = resources
        self._by_id: dict[tuple[str, str], Json] = {}
        self._by_url: dict[tuple[str, str], Json] = {}
        for res in resources:
            self._by_id[(res["resourceType"], str(res.get("id", "")))] = res
            if "url" in res:
                self._by_url[(res["resourceType"], res["url"])] = res
        self._expansions: dict[str, _Expansion] = {}

    # -- resources ---------------------------------------------------------------------------------

    def read(self, rtype: str, rid: str) -> Json | None:
        """The resource ``rtype/rid``, or None."""
        return self._by_id.get((rtype, rid))

    def all(self, rtype: str) -> list[Json]:
        """Every resource of ``rtype``, by id."""
        return [r for (t, _), r in sorted(self._by_id.items()) if t == rtype]

    def by_url(self, rtype: str, url: str) -> Json | None:
        """The resource of ``rtype`` with canonical ``url`` (a ``|version`` suffix is ignored)."""
        return self._by_url.get((rtype, url.split("|")[0]))

    # -- value sets --------------------------------------------------------------------------------

    def _expansion(self, url: str) -> _Expansion | None:
        if url in self._expansions:
            return self._expansions[url]
        vs = self.by_url("ValueSet", url)
        if vs is None:
            return None
        out = _Expansion()
        for include in (vs.get("compose") or {}).get("include", ()):
            system = include.get("system")
            if not system:
                continue
            if include.get("concept"):
                out.concepts += [Concept(system, c["code"], c.get("display")) for c in include["concept"]]
                continue
            cs = self.by_url("CodeSystem", system)
            if cs is None or cs.get("content") == "not-present":
                out.open_systems.add(system)
                continue
            out.partial = out.partial or cs.get("content") != "complete"
            out.concepts += [Concept(system, c["code"], c.get("display")) for c in _flatten(cs)]
        for exclude in (vs.get("compose") or {}).get("exclude", ()):
            gone = {(exclude.get("system"), c["code"]) for c in exclude.get("concept", ())}
            out.concepts = [c for c in out.concepts if (c.system, c.code) not in gone]
        self._expansions[url] = out
        return out

    def is_local(self, url: str) -> bool:
        """Whether the value set ``url`` is one of this folder's."""
        return self.by_url("ValueSet", url) is not None

    def systems(self, url: str) -> frozenset[str]:
        """The code systems a local value set draws on (empty for an unknown one)."""
        exp = self._expansion(url)
        if exp is None:
            return frozenset()
        return frozenset({c.system for c in exp.concepts} | exp.open_systems)

    def own_systems(self, url: str) -> frozenset[str]:
        """The code systems of a local value set that are defined here too (the DMP's own)."""
        return frozenset(s for s in self.systems(url) if self.by_url("CodeSystem", s) is not None)

    def contains(self, url: str, system: str | None, code: str) -> bool | None:
        """Whether ``system|code`` is in the value set ``url`` (a missing system matches any)."""
        exp = self._expansion(url)
        if exp is None:
            r4 = r4_valueset(url)
            return None if r4 is None else r4.has_coding(system, code)
        if system is not None and system in exp.open_systems:
            return True
        if exp.lookup(system, code) is not None:
            return True
        return None if exp.partial or (system is None and exp.open_systems) else False

    def expand(self, url: str, text: str | None = None) -> list[Concept]:
        """The codes of a local value set, those whose code or display contain ``text`` when given."""
        exp = self._expansion(url)
        if exp is None:
            raise KeyError(url)
        if exp.open_systems:
            raise TerminologyError(
                f"the value set {url} includes whole code systems whose codes are not held here "
                f"({', '.join(sorted(exp.open_systems))}): it cannot be expanded"
            )
        if not text:
            return list(exp.concepts)
        needle = _fold(text)
        return [c for c in exp.concepts if needle in _fold(c.code) or needle in _fold(c.display or "")]

    def listed(self, url: str) -> list[Concept]:
        """The codes a local value set lists (without the whole systems it cannot enumerate)."""
        exp = self._expansion(url)
        return list(exp.concepts) if exp else []

    def with_resource(self, resource: Json) -> Terminology:
        """This terminology plus one more resource (an inline value set of an operation)."""
        return Terminology([*self._resources, resource])

    # -- code systems ------------------------------------------------------------------------------

    def concept(self, system: str, code: str) -> Json | None:
        """The concept ``code`` of the code system ``system``, or None."""
        cs = self.by_url("CodeSystem", system)
        if cs is None:
            return None
        return next((c for c in _flatten(cs) if c["code"] == code), None)


def _implicit_valuesets(resources: list[Json]) -> list[Json]:
    """The value set of all codes a CodeSystem names in ``valueSet``, when no file defines it: served
    and expanded like the others (id: the code system's)."""
    explicit = {r.get("url") for r in resources if r.get("resourceType") == "ValueSet"}
    return [
        {
            "resourceType": "ValueSet",
            "id": cs["id"],
            "url": cs["valueSet"],
            **({"version": cs["version"]} if "version" in cs else {}),
            "name": cs.get("name", cs["id"]),
            **({"title": cs["title"]} if "title" in cs else {}),
            "status": cs.get("status", "active"),
            "description": f"Every code of the code system {cs['url']}.",
            "compose": {"include": [{"system": cs["url"]}]},
        }
        for cs in resources
        if cs.get("resourceType") == "CodeSystem" and cs.get("valueSet") and cs["valueSet"] not in explicit
    ]


def _flatten(cs: Json) -> list[Json]:
    out: list[Json] = []
    stack = list(reversed(cs.get("concept", ())))
    while stack:
        concept = stack.pop()
        out.append(concept)
        stack += reversed(concept.get("concept", ()))
    return out


def _fold(text: str) -> str:
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(ch)
    )


def load_terminology(directory: Path) -> Terminology:
    """The CodeSystems, ValueSets and ConceptMaps of ``directory`` (other JSON files are skipped)."""
    resources = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("resourceType") in TYPES and data.get("id"):
            resources.append(data)
    return Terminology(resources)


@cache
def default_terminology() -> Terminology:
    """The terminology of the process's settings (``FHIR_TERMINOLOGY_DIR``), loaded once."""
    return load_terminology(Settings().terminology_dir)
