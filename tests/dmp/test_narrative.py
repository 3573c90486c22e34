"""Generated narratives: data is escaped, links are http(s) only, dates are French."""

from __future__ import annotations

from xml.etree import ElementTree

from fhir_server.dmp.narrative import div, esc, fr_date, link, name_of, para, table


def test_data_is_escaped_and_the_div_is_well_formed_xhtml() -> None:
    xhtml = div(para(esc('<img src=x onerror="alert(1)"> & co')), table(["Nom"], [[esc("<b>Dupont</b>")]]))
    root = ElementTree.fromstring(xhtml)
    assert root.tag == "{http://www.w3.org/1999/xhtml}div"
    assert not root.findall(".//{http://www.w3.org/1999/xhtml}img")
    assert "&lt;img" in xhtml and "&amp; co" in xhtml


def test_only_web_links_are_kept() -> None:
    assert (
        link("https://example.org/a?b=1&c=2", "ouvrir")
        == '<a href="https://example.org/a?b=1&amp;c=2">ouvrir</a>'
    )
    for url in ("javascript:alert(1)", "data:text/html,<script>", "Binary/1", None):
        assert "<a" not in link(url, "ouvrir")


def test_french_dates_and_names() -> None:
    assert fr_date("2026-03-12T10:00:00+01:00") == "12/03/2026"
    assert fr_date("2026-03") == "03/2026"
    assert fr_date(None) == "date inconnue"
    assert (
        name_of({"name": [{"family": "Lefèvre", "given": ["Hélène"], "prefix": ["Dr"]}]})
        == "Dr Hélène LEFÈVRE"
    )
    assert name_of({"name": "Laboratoire du Centre"}) == "Laboratoire du Centre"
