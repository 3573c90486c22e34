"""Reference parameters: Reference, canonical and uri values.

The main field holds ``Type/id`` for a relative reference (a version, ``/_history/2``, is dropped: search
runs on current versions), an absolute URL as it is (without its version too when it ends
``Type/id/_history/v``), and a canonical as it is plus, when it carries ``|version``, without it: a search
for the bare canonical finds every version, one with ``|version`` that version. Contained references
(``#id``) are not indexed. The ``identifier`` side field holds ``Reference.identifier`` as token strings,
for ``:identifier``.

Queries need two facts only the engine has: the parameter's target types (to read a bare id) and this
server's base URL (a reference by absolute URL on this server is the same as the relative one), so the
engine calls :func:`compile_reference`; the contract's :func:`compile` refuses to guess them.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.fhir.errors import BadRequest
from fhir_server.search.kinds import token
from fhir_server.search.kinds._syntax import check, shape, unescape

# Besides ``:[type]`` (any resource type name among the parameter's targets).
MODIFIERS = frozenset({"identifier"})

_TYPE = r"[A-Z][A-Za-z]+"
_ID = r"[A-Za-z0-9\-.]{1,64}"
_RELATIVE = re.compile(rf"^({_TYPE}/{_ID})(?:/_history/[^/]+)?$")
_ABSOLUTE = re.compile(rf"^(\w[\w+.\-]*:.*/{_TYPE}/{_ID})/_history/[^/]+$")
_BARE_ID = re.compile(rf"^{_ID}$")
_TYPE_NAME = re.compile(rf"^{_TYPE}$")


def _normalise(ref: str) -> str:
    """``Type/id`` for a relative reference, an absolute one without its version."""
    m = _RELATIVE.match(ref) or _ABSOLUTE.match(ref)
    return m.group(1) if m else ref


def _references(values: list[Any]) -> list[str]:
    out: set[str] = set()
    for v in values:
        ref = v.get("reference") if isinstance(v, dict) else v
        if not isinstance(ref, str) or not ref or ref.startswith("#"):
            continue
        out.add(_normalise(ref))
        if not isinstance(v, dict) and "|" in ref:
            out.add(ref.split("|", 1)[0])
    return sorted(out)


def extract(values: list[Any], single: bool) -> dict[str, Any]:
    """The main field (references) and ``identifier`` (token strings of Reference.identifier)."""
    identifiers = sorted(
        {
            s
            for v in values
            if isinstance(v, dict) and isinstance(v.get("identifier"), dict)
            for s in token.pair(v["identifier"].get("system"), v["identifier"].get("value"))
        }
    )
    fields = {"": _references(values), "identifier": identifiers}
    return {k: shape(vs, single) for k, vs in fields.items() if vs}


def sort_key(values: list[Any]) -> Any:
    """The smallest reference string."""
    return min(_references(values), default=None)


def _local(relatives: list[str], base: str) -> dict[str, Any]:
    # Stored references are not rewritten, so this server's absolute form is matched as well.
    return {"$in": relatives + [f"{base}/{r}" for r in relatives if base]}


def compile_reference(
    field: str, value: str, modifier: str, name: str, targets: tuple[str, ...], base: str
) -> dict[str, Any]:
    """The MongoDB condition for one reference value.

    ``targets`` are the parameter's target resource types; ``base`` is this server's FHIR base URL
    without a trailing slash. Forms: ``Type/id``; a bare ``id`` (each target type); an absolute URL
    (on this server: as ``Type/id``, else literal); a canonical (literal). ``:Type`` with an id (or
    ``Type/id`` of that type); ``:identifier`` with a token value on ``Reference.identifier``.
    """
    check(value, name)
    if modifier == "identifier":
        return {f"{field}:identifier": token.match(value, name)}
    ref = unescape(value)
    if modifier:
        if not _TYPE_NAME.match(modifier) or (targets and modifier not in targets):
            raise BadRequest(f"modifier ':{modifier}' is not supported on '{name}'", expression=name)
        rid = ref.removeprefix(f"{modifier}/")
        if not _BARE_ID.match(rid):
            raise BadRequest(f"'{value}' is not a {modifier} id for '{name}'", expression=name)
        return {field: _local([f"{modifier}/{rid}"], base)}
    if base and ref.startswith(base + "/"):
        ref = ref[len(base) + 1 :]
    if _RELATIVE.match(ref):
        return {field: _local([_normalise(ref)], base)}
    if _BARE_ID.match(ref) and targets:
        return {field: _local([f"{t}/{ref}" for t in targets], base)}
    return {field: _normalise(ref)}


def compile(field: str, value: str, modifier: str, name: str, single: bool) -> dict[str, Any]:
    """Not usable: reference queries need the target types and base URL, see :func:`compile_reference`."""
    raise TypeError("reference parameters are compiled by compile_reference(..., targets, base)")
