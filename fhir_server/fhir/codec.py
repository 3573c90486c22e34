"""FHIR JSON in and out, keeping decimals exact.

FHIR decimals carry their precision (``105.00`` is not ``105.0``), so request bodies are parsed with
decimals as :class:`decimal.Decimal` (stored as BSON Decimal128) and written back with their original
digits. Duplicate object keys are refused rather than letting the last one silently win.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.fhir.errors import BadRequest


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _DuplicateKey(dup)
    return obj


def parse_json(body: bytes) -> Any:
    """Parse a request body (decimals exact); malformed JSON or a repeated key is a 400."""
    try:
        return json.loads(body, parse_float=Decimal, object_pairs_hook=_object)
    except _DuplicateKey as exc:
        raise BadRequest(f"the key '{exc}' appears twice in one JSON object", code="structure") from exc
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="structure") from exc


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any, pretty: bool = False) -> bytes:
    """Serialise to JSON bytes (decimals with their stored digits)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_INDENT_2 if pretty else 0)
