"""FHIR operations (``$name``): one module per operation, all listed in :mod:`.table`."""
