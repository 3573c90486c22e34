"""Every operation the server answers, in one table (add a module's ``OPERATION`` here)."""

from __future__ import annotations

from fhir_server.operations import dmp_statistics, expand, lookup, validate, validate_code
from fhir_server.operations.registry import Operation

OPERATIONS: tuple[Operation, ...] = (
    dmp_statistics.OPERATION,
    validate.OPERATION,
    lookup.OPERATION,
    expand.OPERATION,
    validate_code.OPERATION,
)


def find(name: str) -> Operation | None:
    """The operation called ``name`` (without the ``$``)."""
    return next((op for op in OPERATIONS if op.name == name), None)
