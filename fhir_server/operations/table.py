"""Every operation the server answers, in one table (add a module's ``OPERATION`` here)."""

from __future__ import annotations

from typing import Any

from fhir_server.operations import (
    dmp_statistics,
    everything,
    expand,
    export,
    import_reimbursements,
    lookup,
    prior_exams,
    summary,
    validate,
    validate_code,
)
from fhir_server.operations.registry import Operation

OPERATIONS: tuple[Operation, ...] = (
    dmp_statistics.OPERATION,
    export.OPERATION,
    import_reimbursements.OPERATION,
    everything.OPERATION,
    prior_exams.OPERATION,
    summary.OPERATION,
    validate.OPERATION,
    lookup.OPERATION,
    expand.OPERATION,
    validate_code.OPERATION,
)


def find(name: str) -> Operation | None:
    """The operation called ``name`` (without the ``$``)."""
    return next((op for op in OPERATIONS if op.name == name), None)


def find_definition(oid: str) -> dict[str, Any] | None:
    """The OperationDefinition with id ``oid`` of an operation this server defines itself."""
    return next((op.resource for op in OPERATIONS if op.resource and op.resource.get("id") == oid), None)
