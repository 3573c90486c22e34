"""The exam families of ``terminology/``: every act the demo data bills is placed, similar acts share a
family, and a map naming an unknown family is refused when read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.config import Settings
from fhir_server.dmp import demo_names, systems
from fhir_server.dmp.exam_families import CODE_SYSTEM_FILE, CONCEPT_MAP_FILE, load_exam_families

_SYSTEMS = {"CCAM": systems.CCAM, "NABM": systems.NABM, "NGAP": systems.NGAP}


def test_every_billed_exam_of_the_demo_data_has_a_family_and_a_kind() -> None:
    families = load_exam_families(Settings().terminology_dir)
    acts = [*demo_names.IMAGING, *demo_names.BIOLOGY, demo_names.GP_VISIT, demo_names.SPECIALIST_VISIT]
    for act in acts:
        system = _SYSTEMS[act.system]
        assert families.family(system, act.code) is not None, act
        assert families.kind(system, act.code) in {k for k, _ in families.kinds}, act


def test_similar_acts_and_report_types_come_from_the_map() -> None:
    families = load_exam_families(Settings().terminology_dir)
    assert set(families.similar(systems.NABM, "1577")) == {(systems.NABM, "1577"), (systems.NABM, "0552")}
    assert families.report_types(systems.CCAM, "ZBQK002") == ("18748-4",)
    assert families.kind(systems.NGAP, "G") == "consultation"
    # An act the map does not place is similar only to itself, and has no report type.
    assert families.similar(systems.CCAM, "ZZZZ999") == ((systems.CCAM, "ZZZZ999"),)
    assert families.report_types(systems.CCAM, "ZZZZ999") == ()


def test_a_map_to_an_unknown_family_is_refused(tmp_path: Path) -> None:
    source = Settings().terminology_dir
    shutil.copy(source / CODE_SYSTEM_FILE, tmp_path / CODE_SYSTEM_FILE)
    concept_map = json.loads((source / CONCEPT_MAP_FILE).read_text("utf-8"))
    concept_map["group"][0]["element"][0]["target"][0]["code"] = "no-such-family"
    (tmp_path / CONCEPT_MAP_FILE).write_text(json.dumps(concept_map), "utf-8")
    with pytest.raises(RuntimeError, match="no-such-family"):
        load_exam_families(tmp_path)


def test_the_terminology_files_are_valid_fhir_resources() -> None:
    directory = Settings().terminology_dir
    for name in (CODE_SYSTEM_FILE, CONCEPT_MAP_FILE, "CodeSystem-summary-sections.json"):
        resource = json.loads((directory / name).read_text("utf-8"))
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
