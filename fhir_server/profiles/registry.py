"""The StructureDefinitions the server knows, and the profile check every write goes through.

Two sources: the DMP profiles of ``profiles/`` (``StructureDefinition-*.json``, with snapshots made by
``scripts/gen_profiles.py``; served as read-only ``StructureDefinition`` resources) and the R4 base
definitions (``definitions/structures.json``, reduced to what validation reads). Structures are built
on first use and kept.

:meth:`Profiles.check` is the write-time rule (README, "Profiles"):

- each profile a resource claims in ``meta.profile`` that the server knows is applied in full; a
  profile it does not know is ignored (the spec lets a server accept claims it cannot check);
- a type with a DMP profile the resource does not claim gets that profile's vocabulary check on every
  write (see :mod:`.validator`), or the full profile when ``FHIR_PROFILES_ENFORCED`` is set.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson

from fhir_server.config import Settings
from fhir_server.fhir.errors import Issue
from fhir_server.profiles.structure import Structure, load_structure
from fhir_server.profiles.validator import validate
from fhir_server.terminology.service import Terminology, default_terminology

Json = dict[str, Any]
BASE = "http://hl7.org/fhir/StructureDefinition/"


@cache
def _base_definitions() -> dict[str, Json]:
    raw: list[Json] = orjson.loads(files("fhir_server").joinpath("definitions/structures.json").read_bytes())
    return {sd["url"]: sd for sd in raw}


class Profiles:
    """Known StructureDefinitions (the DMP's and the base ones) and the terminology they bind to."""

    def __init__(self, dmp: list[Json], terminology: Terminology, enforced: bool = False) -> None:
        self.terminology = terminology
        self.enforced = enforced
        self._dmp = {sd["url"]: sd for sd in dmp}
        self._by_id = {sd["id"]: sd for sd in dmp}
        self._structures: dict[str, Structure] = {}
        self._types = frozenset(sd["type"] for sd in _base_definitions().values())
        self._resource_types = frozenset(
            sd["type"] for sd in _base_definitions().values() if sd["kind"] == "resource"
        )
        # The DMP profile of each resource type (a profile on a resource, not an extension).
        self._for_type = {
            sd["type"]: sd["url"] for sd in dmp if sd.get("kind") == "resource" and sd.get("type")
        }

    # -- definitions -------------------------------------------------------------------------------

    def structure(self, url: str) -> Structure | None:
        """The structure of the StructureDefinition ``url`` (DMP or base), or None when unknown."""
        url = url.split("|")[0]
        if url not in self._structures:
            sd = self._dmp.get(url) or _base_definitions().get(url)
            if sd is None:
                return None
            self._structures[url] = load_structure(sd)
        return self._structures[url]

    def base(self, type_name: str) -> Structure | None:
        """The base definition of a type (``Identifier``, ``Patient``), or None."""
        return self.structure(BASE + type_name) if type_name else None

    def type_of(self, url: str) -> str:
        """The type a StructureDefinition constrains (``…/dmp-patient`` → ``Patient``)."""
        sd = self._dmp.get(url) or _base_definitions().get(url)
        return str(sd["type"]) if sd else url.rsplit("/", 1)[-1]

    def is_type(self, name: str) -> bool:
        """Whether ``name`` is a FHIR type (for the JSON keys of choice elements)."""
        return name in self._types

    def is_resource_type(self, name: str) -> bool:
        """Whether ``name`` is a resource type the definitions know."""
        return name in self._resource_types

    def dmp_profile(self, rtype: str) -> str | None:
        """The url of the DMP profile of ``rtype``, if it has one."""
        return self._for_type.get(rtype)

    def dmp_profiles(self) -> dict[str, str]:
        """Each resource type with a DMP profile, and that profile's url."""
        return dict(self._for_type)

    def definitions(self) -> list[Json]:
        """The DMP StructureDefinitions, as served (sorted by id)."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def read(self, sid: str) -> Json | None:
        """The DMP StructureDefinition with id ``sid``."""
        return self._by_id.get(sid)

    # -- validation --------------------------------------------------------------------------------

    def validate(self, resource: Json, url: str, full: bool = True) -> list[Issue]:
        """The issues of ``resource`` against the profile ``url`` (KeyError when unknown)."""
        structure = self.structure(url)
        if structure is None:
            raise KeyError(url)
        return validate(resource, structure, self, full)

    def check(self, resource: Json) -> list[Issue]:
        """The write-time profile issues of ``resource`` (errors and warnings)."""
        rtype = str(resource.get("resourceType", ""))
        claimed: list[str] = []
        issues: list[Issue] = []
        for i, url in enumerate((resource.get("meta") or {}).get("profile", ())):
            structure = self.structure(url) if isinstance(url, str) else None
            if structure is None:
                continue
            if structure.type != rtype:
                where = f"{rtype}.meta.profile[{i}]"
                issues.append(
                    Issue("invalid", f"{where}: {url} constrains {structure.type}", expression=where)
                )
                continue
            claimed.append(url)
            issues += self.validate(resource, url)
        dmp = self.dmp_profile(rtype)
        if dmp is not None and dmp not in {u.split("|")[0] for u in claimed}:
            issues += self.validate(resource, dmp, full=self.enforced)
        return issues


def load_profiles(directory: Path, terminology: Terminology, enforced: bool = False) -> Profiles:
    """The DMP profiles of ``directory`` (``StructureDefinition-*.json``)."""
    dmp = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in (sorted(directory.glob("StructureDefinition-*.json")) if directory.is_dir() else ())
    ]
    return Profiles(dmp, terminology, enforced)


@cache
def default_profiles() -> Profiles:
    """The profiles and terminology of the process's settings (one instance per process)."""
    settings = Settings()
    return load_profiles(settings.profiles_dir, default_terminology(), settings.profiles_enforced)
