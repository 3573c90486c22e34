"""String parameters: strings and the string parts of HumanName and Address (never ``use`` or ``period``).

The main field holds folded values (lower-cased, accents stripped, white space collapsed) and, for values
of several words, every tail starting at a word (split at spaces and hyphens), so that ``quinones`` finds
``Carreño Quiñones`` as R4 asks for name parts. The ``exact`` side field holds the original strings.

- default: starts-with, case- and accent-insensitive: an anchored, escaped prefix regex (index-usable);
- ``:contains``: the folded value anywhere: an unanchored, escaped regex;
- ``:exact``: the original string, case and accents included.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds._syntax import check, shape, unescape
from fhir_server.search.normalize import fold

MODIFIERS = frozenset({"exact", "contains"})

# The string elements of HumanName and Address; any other complex value contributes its ``text``.
_PARTS = ("family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country")
_WORD_START = re.compile(r"(?<=[ \-])(?=\S)")


def strings(value: Any) -> list[str]:
    """The searchable strings of one node, in element order."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    out: list[str] = []
    for key in (*_PARTS, "text"):
        part = value.get(key)
        for s in part if isinstance(part, list) else [part]:
            if isinstance(s, str):
                out.append(s)
    return out


def folded_forms(text: str) -> list[str]:
    """The folded text and its tails starting at each later word."""
    folded = fold(text)
    return [folded] + [folded[m.start() :] for m in _WORD_START.finditer(folded)]


def extract(values: list[Any], single: bool) -> dict[str, Any]:
    """The main field (folded forms) and ``exact`` (original strings)."""
    originals = sorted({s for v in values for s in strings(v) if s.strip()})
    if not originals:
        return {}
    forms = sorted({f for s in originals for f in folded_forms(s)})
    return {"": shape(forms, single), "exact": shape(originals, single)}


def sort_key(values: list[Any]) -> Any:
    """The smallest folded value, a name or address read as its parts in order (``family given``)."""
    keys = [fold(" ".join(strings(v))) for v in values]
    return min((k for k in keys if k), default=None)


def prefix_regex(text: str) -> dict[str, str]:
    """Starts-with on a folded field; anchored and escaped so the index serves it."""
    return {"$regex": "^" + re.escape(fold(text))}


def compile(field: str, value: str, modifier: str, name: str, single: bool) -> dict[str, Any]:
    """The MongoDB condition for one string value."""
    check(value, name)
    text = unescape(value)
    if modifier == "exact":
        # Equal originals fold equally: the folded equality lets the main field's index narrow first.
        return {"$and": [{field: fold(text)}, {f"{field}:exact": text}]}
    if not fold(text):
        raise BadRequest(f"'{value}' has nothing to search for in '{name}'", expression=name)
    if modifier == "contains":
        return {field: {"$regex": re.escape(fold(text))}}
    if modifier:
        raise BadRequest(f"modifier ':{modifier}' is not supported on '{name}'", expression=name)
    return {field: prefix_regex(text)}
