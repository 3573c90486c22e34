"""One module per search-parameter value kind, each with ``extract`` (write time) and ``compile``
(query time) side by side so the two can never disagree.

The contract every kind module follows:

``extract(values: list[Any], single: bool) -> dict[str, Any]``
    ``values`` are the nodes the parameter's FHIRPath expression yields for one resource (JSON values:
    dicts for complex types, str/bool/int/float for primitives). Returns the index fields to store under
    ``idx``, keyed by *suffix*: ``""`` is the parameter's main field (``idx.<code>``), any other key ``k``
    is stored as ``idx.<code>:k`` (e.g. ``"exact"`` for string ``:exact``, ``"text"`` for token
    ``:text``). Empty results are left out. When ``single`` is true (the expression can yield at most one
    node, per the element model) a kind may store a scalar instead of an array, which keeps compound
    MongoDB indexes possible (MongoDB cannot index two parallel arrays).

``sort_key(values: list[Any]) -> Any``
    One scalar per resource for ``_sort`` (ascending order key), or None when the resource has no value.

``compile(field: str, value: str, modifier: str, name: str, single: bool) -> dict[str, Any]``
    The MongoDB condition for ONE value of the parameter (the engine has already split on unescaped
    commas and combines alternatives with ``$or``, repeated parameters with ``$and``). ``field`` is
    ``idx.<code>``; a modifier's side field is ``f"{field}:{suffix}"``. ``modifier`` is ``""`` when
    none. Prefixes (``ge2020``) are parsed here. Anything malformed or unsupported raises
    :class:`fhir_server.fhir.errors.BadRequest` naming ``name``. Values are matched literally: user input
    never becomes an operator, a field name or an unescaped/unanchored regular expression.

``MODIFIERS: frozenset[str]`` the modifiers ``compile`` accepts (``missing`` is handled by the engine).
"""
