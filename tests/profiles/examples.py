"""The DMP profiles' own examples (``profiles/examples``): one that validates and one that does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "profiles" / "examples"
SD = "https://dmp-fhir.org/StructureDefinition/"


def profile_example(name: str) -> dict[str, Any]:
    """A fresh copy of ``profiles/examples/<name>.json``."""
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return data
