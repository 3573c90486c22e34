"""The habilitation matrix (``terminology/habilitations.json``): which professions and roles may read
and write which documents and resource types. Loaded and validated once at start-up; a bad matrix
stops the server with a message naming the bad entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

TERMINOLOGY_DIR = Path(__file__).resolve().parents[2] / "terminology"
ALL_DOCUMENTS = "*"


class MatrixError(Exception):
    """The matrix file is missing, not JSON, or does not follow its schema."""


@dataclass(frozen=True)
class Rights:
    """What may be read, or written: document codes (classes and types, or ``*``) and resource types."""

    documents: frozenset[str]
    resources: frozenset[str]
    own_documents_only: bool = False

    @property
    def all_documents(self) -> bool:
        return ALL_DOCUMENTS in self.documents

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Rights:
        data = data or {}
        return cls(
            frozenset(data.get("documents", ())),
            frozenset(data.get("resources", ())),
            bool(data.get("ownDocumentsOnly")),
        )


NOTHING = Rights(frozenset(), frozenset())


@dataclass(frozen=True)
class Entry:
    """One line of the matrix: a profession (and specialty), or a role."""

    label: str
    refused: bool
    read: Rights
    write: Rights
    modes: frozenset[str]


@dataclass(frozen=True)
class Matrix:
    """The loaded matrix."""

    version: str
    common_read: frozenset[str]
    common_write: frozenset[str]
    professions: dict[tuple[str, str | None], Entry]
    roles: dict[str, Entry]
    patient_write: frozenset[str]
    patient_document_class: str
    allow_invisible_and_masked: bool

    def for_professional(self, profession: str | None, specialty: str | None) -> Entry:
        """The entry of a profession narrowed by a specialty, else of the profession, else ``*``."""
        for key in ((profession or "", specialty), (profession or "", None), ("*", None)):
            if key in self.professions:
                return self.professions[key]
        raise MatrixError("the matrix has no '*' profession entry")

    def role(self, name: str) -> Entry | None:
        return self.roles.get(name)


def _where(error: jsonschema.ValidationError, data: dict[str, Any]) -> str:
    path = list(error.absolute_path)
    where = "/".join(str(p) for p in path) or "(top level)"
    if len(path) >= 2 and path[0] == "professions" and isinstance(path[1], int):
        entry = data["professions"][path[1]]
        if isinstance(entry, dict):
            where += f" (profession {entry.get('profession')!r} {entry.get('label', '')!r})"
    return where


def parse_matrix(data: Any, schema: dict[str, Any]) -> Matrix:
    """Validate ``data`` against the schema and build the :class:`Matrix`."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise MatrixError(f"habilitation matrix: bad entry at {_where(first, data)}: {first.message}")
    professions: dict[tuple[str, str | None], Entry] = {}
    for item in data["professions"]:
        key = (item["profession"], item.get("specialty"))
        if key in professions:
            raise MatrixError(
                f"habilitation matrix: profession {key[0]!r} specialty {key[1]!r} is listed twice"
            )
        professions[key] = _entry(item)
    if ("*", None) not in professions:
        raise MatrixError("habilitation matrix: a '*' profession entry (other professions) is required")
    return Matrix(
        version=data["version"],
        common_read=frozenset(data["common"]["read"]),
        common_write=frozenset(data["common"]["write"]),
        professions=professions,
        roles={name: _role(item) for name, item in data["roles"].items()},
        patient_write=frozenset(data["patient"]["write"]),
        patient_document_class=data["patient"]["patientDocumentClass"],
        allow_invisible_and_masked=bool(data.get("allowBothInvisibleAndMasked", False)),
    )


def _entry(item: dict[str, Any]) -> Entry:
    refused = bool(item.get("refused"))
    return Entry(
        item["label"],
        refused,
        Rights.of(item.get("read")),
        Rights.of(item.get("write")),
        frozenset(item.get("modes", ())),
    )


def _role(item: dict[str, Any]) -> Entry:
    return Entry(
        item["label"],
        bool(item.get("refused")),
        Rights(frozenset(), frozenset(item.get("read", ()))),
        Rights(frozenset(), frozenset(item.get("write", ()))),
        frozenset(),
    )


def load_matrix(directory: Path = TERMINOLOGY_DIR) -> Matrix:
    """Read ``habilitations.json`` and its schema from ``directory``."""
    try:
        schema = json.loads((directory / "habilitations.schema.json").read_text("utf-8"))
        data = json.loads((directory / "habilitations.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise MatrixError(f"cannot read the habilitation matrix in {directory}: {exc}") from exc
    return parse_matrix(data, schema)
