"""The content of synthetic DMP documents: a one-page PDF or a small CDA R2 document.

Both are real formats a viewer opens (the PDF has a correct cross-reference table; the CDA carries the
INS of the patient and the RPPS of the author under their OIDs), kept to about a kilobyte.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

INS_NIR_OID = "1.2.250.1.213.1.4.8"
RPPS_OID = "1.2.250.1.71.4.2.1"
LOINC_OID = "2.16.840.1.113883.6.1"
DEMO_NOTICE = "Document fictif généré pour démonstration (données synthétiques)."


@dataclass(frozen=True)
class DocumentText:
    """What a document says: its title and the people and date it is about."""

    doc_id: str
    type_code: str
    title: str
    patient_name: str
    patient_given: str
    patient_family: str
    gender: str
    birth_date: str
    nir: str
    author_name: str
    author_rpps: str
    organization: str
    when: str  # dateTime, e.g. 2024-03-05T10:30:00+01:00
    body: tuple[str, ...]


def _pdf_text(value: str) -> bytes:
    """A PDF literal string in WinAnsi (Latin-1 covers French), with its delimiters escaped."""
    raw = value.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _french_date(iso: str) -> str:
    return f"{iso[8:10]}/{iso[5:7]}/{iso[:4]}"


def pdf_document(doc: DocumentText) -> bytes:
    """A one-page A4 PDF with the title, the patient, the author and the body lines."""
    lines = [
        (16, doc.title),
        (11, f"Patient : {doc.patient_name}, né(e) le {_french_date(doc.birth_date)}, INS {doc.nir}"),
        (11, f"Auteur : {doc.author_name} (RPPS {doc.author_rpps}), {doc.organization}"),
        (11, f"Date : {_french_date(doc.when)}"),
        *((11, line) for line in doc.body),
        (9, DEMO_NOTICE),
    ]
    text = b"BT 56 790 Td 16 TL "
    for size, line in lines:
        text += b"/F1 %d Tf " % size + _pdf_text(line) + b" Tj T* "
    text += b"ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _hl7_time(when: str) -> str:
    """``2024-03-05T10:30:00+01:00`` → ``20240305103000+0100`` (HL7 v3 TS)."""
    date, time_zone = when[:10], when[11:]
    clock, zone = time_zone[:8], time_zone[8:]
    return date.replace("-", "") + clock.replace(":", "") + zone.replace(":", "")


def cda_document(doc: DocumentText) -> bytes:
    """A CDA R2 document with a narrative body (a "structured body" of one section)."""
    x = escape
    gender = {"female": "F", "male": "M"}.get(doc.gender, "UN")
    paragraphs = "".join(f"<paragraph>{x(line)}</paragraph>" for line in (*doc.body, DEMO_NOTICE))
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3">'
        '<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        f'<id root="2.25" extension="{x(doc.doc_id)}"/>'
        f'<code code="{doc.type_code}" codeSystem="{LOINC_OID}" displayName="{x(doc.title)}"/>'
        f"<title>{x(doc.title)}</title>"
        f'<effectiveTime value="{_hl7_time(doc.when)}"/>'
        '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>'
        '<languageCode code="fr-FR"/>'
        f'<recordTarget><patientRole><id root="{INS_NIR_OID}" extension="{doc.nir}"/>'
        f"<patient><name><given>{x(doc.patient_given)}</given><family>{x(doc.patient_family)}</family></name>"
        f'<administrativeGenderCode code="{gender}" codeSystem="2.16.840.1.113883.5.1"/>'
        f'<birthTime value="{doc.birth_date.replace("-", "")}"/></patient></patientRole></recordTarget>'
        f'<author><time value="{_hl7_time(doc.when)}"/><assignedAuthor>'
        f'<id root="{RPPS_OID}" extension="{doc.author_rpps}"/>'
        f"<assignedPerson><name>{x(doc.author_name)}</name></assignedPerson>"
        f"<representedOrganization><name>{x(doc.organization)}</name></representedOrganization>"
        "</assignedAuthor></author>"
        "<custodian><assignedCustodian><representedCustodianOrganization>"
        f"<name>{x(doc.organization)}</name>"
        "</representedCustodianOrganization></assignedCustodian></custodian>"
        "<component><structuredBody><component><section>"
        f"<title>{x(doc.title)}</title><text>{paragraphs}</text>"
        "</section></component></structuredBody></component>"
        "</ClinicalDocument>\n"
    )
    return xml.encode("utf-8")
