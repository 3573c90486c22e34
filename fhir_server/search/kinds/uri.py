"""URI parameters (uri, url, canonical, oid, uuid elements): the strings as they are, matched exactly.

- default: the whole URI, case-sensitive;
- ``:below``: the stored URI starts with the value (an anchored, escaped prefix regex);
- ``:above``: the stored URI is the value or one of its ancestors, cut at ``/`` boundaries after the
  authority (``$in`` over those prefixes, with and without a trailing ``/``).

As R4 says, ``:above``/``:below`` only apply to URLs: on a URN (``urn:oid:…``) they match exactly.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds._syntax import check, shape, unescape

MODIFIERS = frozenset({"above", "below"})

_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/]*")


def _uris(values: list[Any]) -> list[str]:
    return sorted({v for v in values if isinstance(v, str) and v})


def extract(values: list[Any], single: bool) -> dict[str, Any]:
    """The main field: the URIs as they are."""
    uris = _uris(values)
    return {"": shape(uris, single)} if uris else {}


def sort_key(values: list[Any]) -> Any:
    """The smallest URI."""
    return min(_uris(values), default=None)


def ancestors(url: str) -> list[str]:
    """``url`` and each of its prefixes ending at a ``/`` after the authority, with and without it."""
    m = _AUTHORITY.match(url)
    if not m:
        return [url]
    out = {url, url.rstrip("/")}
    path = url[m.end() :].rstrip("/")
    while path:
        path = path[: path.rfind("/")] if "/" in path else ""
        out.update({url[: m.end()] + path, url[: m.end()] + path + "/"})
    return sorted(out)


def compile(field: str, value: str, modifier: str, name: str, single: bool) -> dict[str, Any]:
    """The MongoDB condition for one URI value."""
    check(value, name)
    uri = unescape(value)
    is_url = _AUTHORITY.match(uri) is not None
    if modifier == "" or (modifier in MODIFIERS and not is_url):
        return {field: uri}
    if modifier == "below":
        return {field: {"$regex": "^" + re.escape(uri)}}
    if modifier == "above":
        return {field: {"$in": ancestors(uri)}}
    raise BadRequest(f"modifier ':{modifier}' is not supported on '{name}'", expression=name)
