"""Profiles: StructureDefinitions (the DMP's, from ``profiles/``, and the R4 base ones) and the
generic validator that interprets their snapshots."""
