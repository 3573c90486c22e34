"""``GET [base]/$dmp-statistics``: the operators' figures on DMPs, as a ``Parameters`` resource.

DMPs opened, in total and per creation channel (count and percentage), per month of opening (with its
channels), closed DMPs, and live documents per DMP (mean, median, maximum and the distribution). The
database computes every figure (:func:`fhir_server.dmp.store.statistics`); what is left here is shaping
a few dozen grouped rows. Operators only: the server's own full access, a token with the ``admin`` role,
or a token without a DMP role holding a ``system/`` scope; anyone else gets a 403.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.responses import Response

from fhir_server.api.http import json_response
from fhir_server.auth.access import Access
from fhir_server.dmp import store, systems
from fhir_server.fhir.errors import Forbidden
from fhir_server.operations.registry import Operation, OperationCall

DEFINITION = "https://dmp-fhir.org/OperationDefinition/dmp-statistics"
UNKNOWN = "inconnu"
Json = dict[str, Any]


def is_operator(access: Access) -> bool:
    """Whether the caller operates the server (rather than being a patient, professional or client
    with a DMP role)."""
    if access.unrestricted or access.claims.get("role") == "admin":
        return True
    return access.policy is None and any(s.context == "system" for s in access.scopes)


def _percent(part: int, whole: int) -> Decimal:
    return (Decimal(100 * part) / whole).quantize(Decimal("0.1")) if whole else Decimal("0.0")


def _channel(code: str | None) -> Json:
    if code is None:
        return {"name": "code", "valueCoding": {"code": UNKNOWN, "display": "canal non enregistré"}}
    return {"name": "code", "valueCoding": {"system": systems.CREATION_CHANNEL, "code": code}}


def _count(name: str, n: int) -> Json:
    return {"name": name, "valueInteger": n}


def _documents(rows: list[Json], dmps: int) -> Json:
    """Mean, median, maximum and distribution of documents per DMP, DMPs without any included."""
    with_docs = sum(r["dmps"] for r in rows)
    spread = [{"_id": 0, "dmps": dmps - with_docs}, *rows] if dmps > with_docs else rows
    total_docs = sum(r["_id"] * r["dmps"] for r in spread)

    def nth(k: int) -> int:
        seen = 0
        for r in spread:
            seen += r["dmps"]
            if k < seen:
                return int(r["_id"])
        return 0

    median = Decimal(nth((dmps - 1) // 2) + nth(dmps // 2)) / 2 if dmps else Decimal(0)
    mean = (Decimal(total_docs) / dmps).quantize(Decimal("0.01")) if dmps else Decimal("0.00")
    return {
        "name": "documentsPerDmp",
        "part": [
            {"name": "mean", "valueDecimal": mean},
            {"name": "median", "valueDecimal": median},
            _count("max", int(spread[-1]["_id"]) if spread else 0),
            *(
                {"name": "distribution", "part": [_count("documents", r["_id"]), _count("dmps", r["dmps"])]}
                for r in spread
            ),
        ],
    }


def statistics_parameters(figures: Json) -> Json:
    """The ``Parameters`` answer from the database's grouped figures."""
    channels = figures["channels"]
    opened = sum(r["opened"] for r in channels)
    closed = sum(r["closed"] for r in channels)
    months: dict[str, list[Json]] = {}
    for row in figures["months"]:
        months.setdefault(row["_id"].get("month") or UNKNOWN, []).append(row)
    params: list[Json] = [_count("opened", opened), _count("closed", closed)]
    params += [
        {
            "name": "channel",
            "part": [
                _channel(r["_id"]),
                _count("opened", r["opened"]),
                {"name": "percent", "valueDecimal": _percent(r["opened"], opened)},
                _count("closed", r["closed"]),
            ],
        }
        for r in channels
    ]
    for month, rows in months.items():
        in_month = sum(r["opened"] for r in rows)
        params.append(
            {
                "name": "month",
                "part": [
                    {"name": "month", "valueString": month},
                    _count("opened", in_month),
                    *(
                        {
                            "name": "channel",
                            "part": [
                                _channel(r["_id"].get("channel")),
                                _count("opened", r["opened"]),
                                {"name": "percent", "valueDecimal": _percent(r["opened"], in_month)},
                            ],
                        }
                        for r in rows
                    ),
                ],
            }
        )
    params.append(_documents(figures["documents"], opened))
    return {"resourceType": "Parameters", "parameter": params}


async def dmp_statistics(call: OperationCall) -> Response:
    """Answer ``$dmp-statistics``."""
    if not is_operator(call.access):
        raise Forbidden("$dmp-statistics is for the server's operators (admin)", code="forbidden")
    figures = await store.statistics(call.services.repo)
    return json_response(call.request, statistics_parameters(figures))


OPERATION = Operation(
    name="dmp-statistics",
    handler=dmp_statistics,
    definition=DEFINITION,
    methods=("GET",),
    system=True,
    documentation="DMPs opened (total, per channel, per month), closed, and documents per DMP; operators only",
)
