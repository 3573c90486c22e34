"""Identifier and code systems of the DMP (DOMAIN.md), each URL written once.

The ones marked (ours) are project URIs, to align with official ones when they exist.
"""

from __future__ import annotations

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA = "urn:oid:1.2.250.1.213.1.4.9"
INS_NIR_TEST = "urn:oid:1.2.250.1.213.1.4.10"
INS_NIR_DEMO = "urn:oid:1.2.250.1.213.1.4.11"
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
CCAM = "https://smt.esante.gouv.fr/terminologie-ccam"
# (ours) No official FHIR URI is confirmed for these nomenclatures (DOMAIN.md).
NGAP = "https://dmp-fhir.org/CodeSystem/ngap"
NABM = "https://dmp-fhir.org/CodeSystem/nabm"
LPP = "https://dmp-fhir.org/CodeSystem/lpp"
# (ours) Exam families: what counts as "a similar exam" (terminology/CodeSystem-exam-families.json).
EXAM_FAMILY = "https://dmp-fhir.org/CodeSystem/exam-family"

# (ours) Who opened a DMP, through which channel: an extension on Patient holding a Coding.
CREATION_CHANNEL_EXTENSION = "https://dmp-fhir.org/StructureDefinition/dmp-creation-channel"
CREATION_CHANNEL = "https://dmp-fhir.org/CodeSystem/dmp-creation-channel"
# The codes of terminology/CodeSystem-dmp-creation-channel.json (a test keeps them equal).
PATIENT_WEB = "patient-web"
CREATION_CHANNELS = (PATIENT_WEB, "pharmacie", "cpam", "professionnel-sante", "etablissement")
# (ours) A closed DMP: Patient.active false and this extension (date and reason), docs/dmp-lifecycle.md.
CLOSURE_EXTENSION = "https://dmp-fhir.org/StructureDefinition/dmp-closure"
# (ours) Consent.policy.uri of the patient's consent to the opening of their DMP by someone else.
OPENING_POLICY = "https://dmp-fhir.org/policy/dmp-opening"

# Consent conventions (docs/access-rules.md).
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# (ours) Sections of the patient summary that the IPS does not code (terminology/CodeSystem-summary-sections.json).
SUMMARY_SECTION = "https://dmp-fhir.org/CodeSystem/summary-section"

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
