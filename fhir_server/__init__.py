"""dmp-fhir: an HL7 FHIR R4 server on MongoDB for France's Dossier Médical Partagé."""

__version__ = "0.1.0"
