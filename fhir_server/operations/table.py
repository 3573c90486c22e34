"""Every operation the server answers, in one table (add a module's ``OPERATION`` here)."""

from __future__ import annotations

from fhir_server.operations import export
from fhir_server.operations.registry import Operation

OPERATIONS: tuple[Operation, ...] = (export.OPERATION,)


def find(name: str) -> Operation | None:
    """The operation called ``name`` (without the ``$``)."""
    return next((op for op in OPERATIONS if op.name == name), None)
