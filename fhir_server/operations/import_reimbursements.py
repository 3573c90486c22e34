"""``POST [base]/$import-reimbursements``: a flat extract (``text/csv``) posted by the Assurance Maladie.

Only the ``cnam`` role (or a server without authorization) may call it; its token must also allow
writing ExplanationOfBenefit. Good lines are imported, bad ones skipped; the answer is an
OperationOutcome: one informational issue with the counts, then one issue per rejected line.
"""

from __future__ import annotations

import io
from datetime import date

from starlette.responses import Response

from fhir_server.api.http import json_response, read_body
from fhir_server.auth.scopes import CREATE
from fhir_server.dmp.extract import ExtractError
from fhir_server.dmp.importer import ExtractImporter
from fhir_server.fhir.errors import BadRequest, Forbidden, Issue, operation_outcome
from fhir_server.operations.registry import Operation, OperationCall

CNAM_ROLE = "cnam"


async def import_reimbursements(call: OperationCall) -> Response:
    access = call.access
    if not access.unrestricted and access.claims.get("role") != CNAM_ROLE:
        raise Forbidden(
            "$import-reimbursements is for the Assurance Maladie (the cnam role)", code="forbidden"
        )
    access.require("ExplanationOfBenefit", CREATE)
    services = call.services
    body = await read_body(call.request, services.settings.max_body_bytes, {"text/csv"})
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the extract is not UTF-8 (byte {exc.start})", code="structure") from exc
    importer = ExtractImporter(services.repo, services.settings.terminology_dir, date.today())
    try:
        report = await importer.run(io.StringIO(text, newline=""), "request body")
    except ExtractError as exc:
        raise BadRequest(str(exc), code="structure") from exc
    summary = report.describe().splitlines()
    issues = [Issue("informational", "; ".join(summary[:2]), severity="information")]
    issues += [Issue("invalid", f"line {r.line}: {r.reason}", severity="error") for r in report.rejected]
    return json_response(call.request, operation_outcome(issues))


OPERATION = Operation(
    name="import-reimbursements",
    handler=import_reimbursements,
    definition="https://dmp-fhir.org/OperationDefinition/import-reimbursements",
    methods=("POST",),
    system=True,
    documentation="Import a flat reimbursement extract (text/csv, docs/reimbursement-extract.md); cnam role only. "
    "Answers an OperationOutcome listing the rejected lines.",
)
