"""FHIR errors: one exception type carrying its OperationOutcome and HTTP status.

::

    FhirError                     any failure a client should see as an OperationOutcome
    ├── BadRequest        400     malformed syntax, bad parameters
    ├── NotFound          404     unknown type or id
    ├── Gone              410     deleted resource
    ├── MethodNotAllowed  405
    ├── NotAcceptable     406     unsupported _format / Accept
    ├── Conflict          409     version conflict, duplicate
    ├── PreconditionFailed 412    If-Match mismatch, ambiguous conditional
    ├── PayloadTooLarge   413
    ├── UnsupportedMedia  415
    └── Unprocessable     422     business rules, invalid content

The HTTP layer renders every one of them with a single handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Issue:
    """One ``OperationOutcome.issue``."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = [self.expression]
        return out


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource for ``issues``."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


class FhirError(Exception):
    """Base of every error the server reports as an OperationOutcome."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "exception"

    def __init__(
        self,
        diagnostics: str = "",
        *,
        code: str | None = None,
        expression: str | None = None,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if issues is None:
            issues = [Issue(code or self.default_code, diagnostics, expression=expression)]
        super().__init__(diagnostics or "; ".join(i.diagnostics for i in issues))
        self.issues = issues
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class BadRequest(FhirError):
    status = 400
    default_code = "invalid"


class NotFound(FhirError):
    status = 404
    default_code = "not-found"


class Gone(FhirError):
    status = 410
    default_code = "deleted"


class MethodNotAllowed(FhirError):
    status = 405
    default_code = "not-supported"


class NotAcceptable(FhirError):
    status = 406
    default_code = "not-supported"


class Conflict(FhirError):
    status = 409
    default_code = "conflict"


class PreconditionFailed(FhirError):
    status = 412
    default_code = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    default_code = "too-costly"


class UnsupportedMedia(FhirError):
    status = 415
    default_code = "not-supported"


class Unprocessable(FhirError):
    status = 422
    default_code = "processing"


class Unauthorized(FhirError):
    """No usable access token: the client should (re)authenticate (RFC 6750 §3)."""

    status = 401
    default_code = "login"


class Forbidden(FhirError):
    """A valid token that does not allow this interaction."""

    status = 403
    default_code = "forbidden"
