"""Safe XHTML for generated narratives (``text.div``) and the printable page of a patient summary.

Everything that comes from data passes through :func:`esc`; the builders take escaped fragments only
(``Html``), so a name such as ``<script>`` is shown, never run. Links are kept only for http(s) URLs.
Labels are in French: the DMP's readers are French professionals and patients.
"""

from __future__ import annotations

import html
from typing import Any, NewType

Html = NewType("Html", str)
XHTML = "http://www.w3.org/1999/xhtml"

_GENDER = {"female": "femme", "male": "homme", "other": "autre", "unknown": "inconnu"}


def esc(value: object) -> Html:
    """``value`` as escaped text (quotes included, for attributes too)."""
    return Html(html.escape("" if value is None else str(value), quote=True))


def div(*parts: Html) -> str:
    """A FHIR narrative: the XHTML ``div`` holding ``parts``."""
    return f'<div xmlns="{XHTML}">{"".join(parts)}</div>'


def para(*parts: Html) -> Html:
    return Html(f"<p>{''.join(parts)}</p>")


def strong(text: object) -> Html:
    return Html(f"<b>{esc(text)}</b>")


def link(url: object, label: object) -> Html:
    """A link when ``url`` is http(s), else the label alone (no ``javascript:`` or ``data:`` URL)."""
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return Html(f'<a href="{esc(url)}">{esc(label)}</a>')
    return esc(label)


def table(headers: list[str], rows: list[list[Html]]) -> Html:
    """A table of escaped cells under plain-text headers."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def fr_date(value: object) -> str:
    """A FHIR date or dateTime as a French date (``12/03/2026``, ``03/2026``, ``2026``)."""
    if not isinstance(value, str) or len(value) < 4:
        return "date inconnue"
    parts = value[:10].split("-")
    return "/".join(reversed(parts))


def name_of(resource: dict[str, Any] | None) -> str | None:
    """A person's or organization's name as one line (``Dr Marie DUPONT``, ``Laboratoire X``)."""
    if not resource:
        return None
    if isinstance(resource.get("name"), str):
        return str(resource["name"])
    names = resource.get("name") or []
    if not names:
        return None
    n = next((x for x in names if x.get("use") == "official"), names[0])
    if n.get("text"):
        return str(n["text"])
    parts = [*n.get("prefix", []), *n.get("given", []), (n.get("family") or "").upper()]
    return " ".join(p for p in parts if p) or None


def concept_text(concept: dict[str, Any] | None) -> str | None:
    """What a CodeableConcept says: its text, else a coding's display, else a code."""
    if not concept:
        return None
    if concept.get("text"):
        return str(concept["text"])
    codings = concept.get("coding") or []
    for c in codings:
        if c.get("display"):
            return str(c["display"])
    return next((str(c["code"]) for c in codings if c.get("code")), None)


def patient_line(patient: dict[str, Any], ins: str | None) -> Html:
    """Who the summary is about: name, sex, birth date, INS."""
    parts = [strong(name_of(patient) or "Patient sans nom")]
    if patient.get("gender") in _GENDER:
        parts.append(esc(f", {_GENDER[patient['gender']]}"))
    if patient.get("birthDate"):
        parts.append(esc(f", né(e) le {fr_date(patient['birthDate'])}"))
    if ins:
        parts.append(esc(f", INS {ins}"))
    return para(*parts)


_PAGE_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#111}h1{font-size:1.5em}h2{font-size:1.2em;"
    "border-bottom:1px solid #888;margin-top:1.5em}h3{font-size:1em}table{border-collapse:collapse;"
    "width:100%;margin:.5em 0}th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;"
    "vertical-align:top}th{background:#eee}.meta{color:#555;font-size:.9em}"
    "@media print{body{margin:1cm}a{color:inherit;text-decoration:none}h2{break-after:avoid}}"
)


def _section_html(section: dict[str, Any], level: int) -> str:
    title = esc(section.get("title", ""))
    body = (section.get("text") or {}).get("div", "")
    inner = "".join(_section_html(s, level + 1) for s in section.get("section", []))
    return f"<section><h{level}>{title}</h{level}>{body}{inner}</section>"


def summary_page(bundle: dict[str, Any]) -> str:
    """The printable HTML page of a summary ``document`` Bundle (its Composition's narratives, which
    were generated escaped)."""
    composition = bundle["entry"][0]["resource"]
    title = esc(composition.get("title", "Synthèse"))
    sections = "".join(_section_html(s, 2) for s in composition.get("section", []))
    header = (composition.get("text") or {}).get("div", "")
    generated = esc(f"Document généré le {fr_date(bundle.get('timestamp'))} ({bundle.get('timestamp', '')})")
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_PAGE_STYLE}</style></head><body>"
        f'<h1>{title}</h1>{header}<p class="meta">{generated}</p>{sections}</body></html>'
    )
