"""Identifier and code systems of the DMP (DOMAIN.md), each URL written once.

The ones marked (ours) are project URIs, to align with official ones when they exist.
"""

from __future__ import annotations

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA = "urn:oid:1.2.250.1.213.1.4.9"
RPPS = "urn:oid:1.2.250.1.71.4.2.1"
FINESS = "urn:oid:1.2.250.1.71.4.2.2"

PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
SPECIALTY = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
DOCUMENT_CLASS = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
VISIBILITY = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
)
LOINC = "http://loinc.org"
CIP_UCD = "https://smt.esante.gouv.fr/terminologie-cip_ucd"

# (ours) Who opened a DMP, through which channel: an extension on Patient holding a Coding.
CREATION_CHANNEL_EXTENSION = "https://dmp-fhir.org/StructureDefinition/dmp-creation-channel"
CREATION_CHANNEL = "https://dmp-fhir.org/CodeSystem/dmp-creation-channel"

# Consent conventions (docs/access-rules.md).
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

# Reimbursed acts and products (DOMAIN.md, "Reimbursement history"). CCAM and CIP13/UCD have official
# URIs; NGAP, NABM and LPP have none confirmed, so they are (ours), each declared as a CodeSystem in
# terminology/CodeSystem-<name>.json.
CCAM = "https://smt.esante.gouv.fr/terminologie-ccam"
NGAP = "https://dmp-fhir.org/CodeSystem/ngap"
NABM = "https://dmp-fhir.org/CodeSystem/nabm"
LPP = "https://dmp-fhir.org/CodeSystem/lpp"
# The extract's code_system column -> the FHIR system of productOrService (CIP13 and UCD share one).
EXTRACT_CODE_SYSTEMS = {
    "CCAM": CCAM,
    "NGAP": NGAP,
    "NABM": NABM,
    "CIP13": CIP_UCD,
    "UCD": CIP_UCD,
    "LPP": LPP,
}
PHARMACY_CODE_SYSTEMS = frozenset({"CIP13", "UCD"})

# (ours) Identifiers of what the reimbursement import writes: the invoice number of the Assurance
# Maladie on its Claim and ExplanationOfBenefit, and the key of a derived MedicationStatement.
CNAM_INVOICE = "https://dmp-fhir.org/NamingSystem/cnam-invoice"
DERIVED_MEDICATION = "https://dmp-fhir.org/NamingSystem/reimbursed-medication"
# (ours) The role of a professional in an invoice's care team: who prescribed, who performed.
CARE_TEAM_ROLE = "https://dmp-fhir.org/CodeSystem/reimbursement-care-team-role"

# HL7 code systems of the financial resources.
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
PROCESS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
MEDICATION_STATEMENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
