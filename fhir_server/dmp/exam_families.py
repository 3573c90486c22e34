"""Exam families: which reimbursed acts are "similar exams", under which kind a summary lists them, and
which document types report them.

The grouping is data (``terminology/CodeSystem-exam-families.json`` and
``terminology/ConceptMap-exam-families.json``), not code: the CodeSystem's top-level concepts are the
kinds (consultation, imaging, biology…) and their children the families; the ConceptMap maps act codes
(CCAM, NABM, NGAP) to families, and families to the LOINC types of their reports. A family may also be a
kind itself (an act that belongs to biology but to no finer family).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhir_server.dmp.systems import EXAM_FAMILY, LOINC

CODE_SYSTEM_FILE = "CodeSystem-exam-families.json"
CONCEPT_MAP_FILE = "ConceptMap-exam-families.json"

Coding = tuple[str, str]


@dataclass(frozen=True)
class ExamFamilies:
    """The grouping read from ``terminology/``."""

    # Kinds in the CodeSystem's order, with their display.
    kinds: tuple[tuple[str, str], ...]
    # family or kind code -> display
    display: dict[str, str]
    # family or kind code -> the kind it belongs to
    kind_of_family: dict[str, str]
    # (system, code) of an act -> its family
    family_of_act: dict[Coding, str]
    # family -> the act codings that map to it
    acts_of_family: dict[str, tuple[Coding, ...]]
    # family -> LOINC document types of its reports
    reports_of_family: dict[str, tuple[str, ...]]

    @property
    def act_systems(self) -> frozenset[str]:
        """The act nomenclatures the map knows."""
        return frozenset(system for system, _ in self.family_of_act)

    def family(self, system: str, code: str) -> str | None:
        """The family of an act, or None when the map does not place it."""
        return self.family_of_act.get((system, code))

    def kind(self, system: str, code: str) -> str | None:
        """The kind (top-level family) of an act, or None."""
        family = self.family(system, code)
        return self.kind_of_family.get(family) if family else None

    def similar(self, system: str, code: str) -> tuple[Coding, ...]:
        """The acts of the same family as ``system|code`` (the act itself included)."""
        family = self.family(system, code)
        if family is None:
            return ((system, code),)
        return self.acts_of_family[family]

    def report_types(self, system: str, code: str) -> tuple[str, ...]:
        """The LOINC document types that report an act of this family."""
        family = self.family(system, code)
        return self.reports_of_family.get(family, ()) if family else ()


def _read(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot read {path}: {exc}") from exc
    return data


def _kinds(code_system: dict[str, Any]) -> tuple[tuple[tuple[str, str], ...], dict[str, str], dict[str, str]]:
    kinds: list[tuple[str, str]] = []
    display: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    for top in code_system.get("concept", []):
        kinds.append((top["code"], top.get("display", top["code"])))
        display[top["code"]] = top.get("display", top["code"])
        kind_of[top["code"]] = top["code"]
        for child in top.get("concept", []):
            display[child["code"]] = child.get("display", child["code"])
            kind_of[child["code"]] = top["code"]
    return tuple(kinds), display, kind_of


@cache
def load_exam_families(directory: Path) -> ExamFamilies:
    """Read and check the exam-family CodeSystem and ConceptMap of ``directory`` (once per folder)."""
    code_system = _read(directory / CODE_SYSTEM_FILE)
    concept_map = _read(directory / CONCEPT_MAP_FILE)
    if code_system.get("url") != EXAM_FAMILY:
        raise RuntimeError(f"{CODE_SYSTEM_FILE} must define {EXAM_FAMILY}")
    kinds, display, kind_of = _kinds(code_system)
    family_of: dict[Coding, str] = {}
    reports: dict[str, tuple[str, ...]] = {}
    for group in concept_map.get("group", []):
        source, target = group.get("source"), group.get("target")
        for element in group.get("element", []):
            codes = tuple(t["code"] for t in element.get("target", []) if t.get("equivalence") != "unmatched")
            if target == EXAM_FAMILY and isinstance(source, str):
                unknown = [c for c in codes if c not in kind_of]
                if unknown or len(codes) != 1:
                    raise RuntimeError(
                        f"{CONCEPT_MAP_FILE}: {source}|{element['code']} must map to one family of "
                        f"{CODE_SYSTEM_FILE} (got {list(codes)})"
                    )
                family_of[(source, element["code"])] = codes[0]
            elif source == EXAM_FAMILY and target == LOINC:
                if element["code"] not in kind_of:
                    raise RuntimeError(f"{CONCEPT_MAP_FILE}: unknown family {element['code']}")
                reports[element["code"]] = codes
    members: dict[str, list[Coding]] = {}
    for coding, family in family_of.items():
        members.setdefault(family, []).append(coding)
    return ExamFamilies(
        kinds, display, kind_of, family_of, {f: tuple(c) for f, c in members.items()}, reports
    )
