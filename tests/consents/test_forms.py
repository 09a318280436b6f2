"""The printable consent forms: every Part 2 form carries each element of § 2.31(a) that
Concord prints (docs/part2-sources.md), in both languages; the text is the patient's language."""

from __future__ import annotations

import zlib
from datetime import date

import pytest

from concord.consents.forms import TEMPLATES, render_pdf
from concord.i18n import translate

PART2_ELEMENTS = {
    "My name",  # (a)(1)
    "Who may share my records (the program)",  # (a)(2)
    "What may be shared",  # (a)(3)
    "Why (the purpose)",
    "My right to take back this consent",
    "This consent ends on (date or event)",
    "My signature",
    "Date signed",
}


@pytest.mark.parametrize("form", [t for t in TEMPLATES.values() if t.part2], ids=str)
def test_every_part2_form_has_the_required_elements(form):
    labels = {line.label for line in form.lines}
    assert PART2_ELEMENTS <= labels
    assert any(line.label.startswith("Who may receive them") for line in form.lines)  # (a)(4)
    cited = {line.element for line in form.lines if line.element}
    assert {"2.31(a)(1)", "2.31(a)(2)", "2.31(a)(3)", "2.31(a)(4)"} <= cited


def test_the_tpo_form_describes_the_recipients_as_the_rule_allows():
    tpo = TEMPLATES["part2-tpo"]
    recipients = next(line for line in tpo.lines if line.element == "2.31(a)(4)")
    assert recipients.text == (
        "My treating providers, health plans, third-party payers, and people helping to "
        "operate this program"
    )


@pytest.mark.parametrize("lang", ["en", "es"])
def test_the_pdf_is_in_the_patients_language(lang):
    pdf = render_pdf("part2-tpo", lang=lang, patient_name="Pat Ient", today=date(2026, 11, 22))
    assert pdf.startswith(b"%PDF")
    title = translate(TEMPLATES["part2-tpo"].title, lang)
    assert title.encode("utf-16-be")[:10] in _metadata(pdf) or title.encode()[:10] in _metadata(pdf)
    if lang == "es":
        assert translate("My signature", "es") == "Mi firma"


def _metadata(pdf: bytes) -> bytes:
    """The PDF's bytes with its streams inflated (the title is in the document's metadata)."""
    out = [pdf]
    for chunk in pdf.split(b"stream")[1:]:
        try:
            out.append(zlib.decompress(chunk.lstrip(b"\r\n")))
        except zlib.error:
            continue
    return b"".join(out)
