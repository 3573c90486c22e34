"""What an operation is: where it may be invoked, with which methods, and the code that answers it.

An operation module defines one :class:`Operation`; :mod:`fhir_server.operations.table` lists them
all. The routes (``api/operation_routes.py``) dispatch on that table and the CapabilityStatement
advertises it, so an operation is reachable exactly where it is declared.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from fhir_server.api.routes import Services
    from fhir_server.auth.access import Access


@dataclass
class OperationCall:
    """One invocation: the HTTP request, the server's services, the caller's access, and where the
    operation was invoked (``rtype``/``rid`` are None at system level, ``rid`` None at type level)."""

    request: Request
    services: Services
    access: Access
    rtype: str | None
    rid: str | None


Handler = Callable[[OperationCall], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    """A ``$name`` operation. ``system``: invocable on the base; ``types``: on ``[base]/[type]``;
    ``instances``: on ``[base]/[type]/[id]``. ``definition`` is the canonical URL of its
    OperationDefinition (listed in the CapabilityStatement)."""

    name: str
    handler: Handler
    definition: str
    methods: tuple[str, ...] = ("GET", "POST")
    system: bool = False
    types: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()
    documentation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The OperationDefinition resource, for operations this server defines itself (served at
    # [base]/OperationDefinition/[id]); None for those HL7 defines.
    resource: dict[str, Any] | None = None
    # Whether each invocation is traced as an AuditEvent: False only for operations that read no
    # patient data themselves (terminology; $validate, whose read of a stored resource is traced).
    audited: bool = True

    def invocable(self, rtype: str | None, rid: str | None) -> bool:
        """Whether this operation may be invoked at that level."""
        if rtype is None:
            return self.system
        return rtype in (self.instances if rid is not None else self.types)
