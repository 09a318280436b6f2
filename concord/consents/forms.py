"""Consent forms to print and sign on paper: the common cases, in plain words, each with the
elements 42 CFR Part 2 § 2.31(a) requires of a written consent (see docs/part2-sources.md for
what was checked against the rule's text and what was not).

A form is printed with the patient's name and what the team already knows filled in; the
rest is left blank to fill in by hand. Once signed, it is scanned and recorded as a consent
(method paper_scanned) with the scan's document reference.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

from concord.i18n import N_, gettext, translate


@dataclass(frozen=True)
class Line:
    """One element of the form: its label (which § 2.31(a) element it is, for Part 2 forms),
    and the text printed for it; None leaves a line to write on."""

    label: str
    text: str | None = None
    element: str | None = None  # "2.31(a)(1)" and so on
    fill: bool = False  # the text, then a line to write on


@dataclass(frozen=True)
class FormTemplate:
    id: str
    title: str
    intro: str
    lines: tuple[Line, ...]
    part2: bool


FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)

REVOKE = N_(
    "You can take back (revoke) this consent at any time by telling your care team in "
    'writing, or in the portal under "Who can see my record". Taking it back stops future '
    "sharing; it cannot undo sharing that already happened while the consent was in place."
)
NOT_A_CONDITION = N_(
    "Your treatment does not depend on signing this form. You may refuse to sign it."
)
PART2_PROTECTION = N_(
    "Your substance-use treatment records are protected by a federal law, 42 CFR Part 2. "
    "They cannot be shared without your written consent, except in the few cases the law "
    "allows, and they cannot be used against you in a criminal, civil or administrative "
    "case without your consent or a court order."
)
TPO_REDISCLOSURE = N_(
    "If you sign this form, a provider or health plan that receives your records for "
    "treatment, payment or health care operations may share them again as the HIPAA privacy "
    "rules allow, but still never for a legal case against you without your consent or a "
    "court order."
)

TEMPLATES: dict[str, FormTemplate] = {
    t.id: t
    for t in (
        FormTemplate(
            id="part2-named-provider",
            title=N_("Consent to share my substance-use treatment records with a named provider"),
            intro=PART2_PROTECTION,
            part2=True,
            lines=(
                Line(N_("My name"), element="2.31(a)(1)"),
                Line(N_("Who may share my records (the program)"), element="2.31(a)(2)"),
                Line(
                    N_("What may be shared"),
                    N_("My substance-use treatment records, namely (write which):"),
                    fill=True,
                    element="2.31(a)(3)",
                ),
                Line(
                    N_("Who may receive them (name of the person or organization)"),
                    element="2.31(a)(4)",
                ),
                Line(N_("Why (the purpose)"), N_("Treatment"), element="2.31(a)"),
                Line(N_("My right to take back this consent"), REVOKE, element="2.31(a)"),
                Line(N_("This consent ends on (date or event)"), element="2.31(a)"),
                Line(N_("My signature"), element="2.31(a)"),
                Line(N_("Date signed"), element="2.31(a)"),
                Line(N_("Before you sign"), NOT_A_CONDITION),
            ),
        ),
        FormTemplate(
            id="part2-tpo",
            title=N_(
                "One consent for treatment, payment and health care operations "
                "(substance-use treatment records)"
            ),
            intro=PART2_PROTECTION,
            part2=True,
            lines=(
                Line(N_("My name"), element="2.31(a)(1)"),
                Line(N_("Who may share my records (the program)"), element="2.31(a)(2)"),
                Line(
                    N_("What may be shared"),
                    N_("My substance-use treatment records, namely (write which):"),
                    fill=True,
                    element="2.31(a)(3)",
                ),
                Line(
                    N_("Who may receive them"),
                    N_(
                        "My treating providers, health plans, third-party payers, and people "
                        "helping to operate this program"
                    ),
                    element="2.31(a)(4)",
                ),
                Line(
                    N_("Why (the purpose)"),
                    N_("Treatment, payment and health care operations"),
                    element="2.31(a)",
                ),
                Line(N_("My right to take back this consent"), REVOKE, element="2.31(a)"),
                Line(N_("This consent ends on (date or event)"), element="2.31(a)"),
                Line(N_("My signature"), element="2.31(a)"),
                Line(N_("Date signed"), element="2.31(a)"),
                Line(N_("Sharing again"), TPO_REDISCLOSURE, element="2.31(a)(4)(iii)"),
                Line(N_("Before you sign"), NOT_A_CONDITION),
            ),
        ),
        FormTemplate(
            id="family-care-plan",
            title=N_("Consent to share my care plan with a family member or carer"),
            intro=N_(
                "This lets one person you choose see your care plan in the portal. They do not "
                "see the rest of your record."
            ),
            part2=False,
            lines=(
                Line(N_("My name")),
                Line(N_("The person who may see my care plan (name and relationship)")),
                Line(N_("What they may see"), N_("My care plan")),
                Line(N_("Why (the purpose)"), N_("So they can follow and support my care")),
                Line(N_("My right to take back this consent"), REVOKE),
                Line(N_('This consent ends on (date or event, or "when I take it back")')),
                Line(N_("My signature")),
                Line(N_("Date signed")),
            ),
        ),
    )
}


def template_ids() -> list[str]:
    return list(TEMPLATES)


@lru_cache(maxsize=1)
def fonts() -> tuple[str, str]:
    """DejaVu where the system has it (wide coverage: Spanish and more), else the Bitstream
    Vera fonts inside ReportLab; the same choice as the safety plan's PDF."""
    import reportlab

    candidates = [(d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf") for d in FONT_DIRS]
    bundled = Path(reportlab.__file__).parent / "fonts"
    candidates.append((bundled / "Vera.ttf", bundled / "VeraBd.ttf"))
    for regular, bold in candidates:
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont("ConsentSans", str(regular)))
            pdfmetrics.registerFont(TTFont("ConsentSans-Bold", str(bold)))
            return "ConsentSans", "ConsentSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def render_pdf(template_id: str, *, lang: str, patient_name: str, today: date) -> bytes:
    """The form as a Letter-size PDF for a wet signature, the patient's name filled in."""
    form = TEMPLATES[template_id]
    regular, bold = fonts()
    title = ParagraphStyle("t", fontName=bold, fontSize=15, leading=19, spaceAfter=6)
    body = ParagraphStyle("b", fontName=regular, fontSize=11, leading=15, spaceAfter=4)
    label = ParagraphStyle(
        "l",
        fontName=bold,
        fontSize=11,
        leading=14,
        spaceBefore=8,
        textColor=colors.HexColor("#0b4f6c"),
    )
    small = ParagraphStyle(
        "s", fontName=regular, fontSize=8.5, leading=11, textColor=colors.HexColor("#555555")
    )

    def t(text: str) -> str:
        return escape(translate(text, lang))

    story = [Paragraph(t(form.title), title), Paragraph(t(form.intro), body)]
    blank = "_" * 60
    for line in form.lines:
        story.append(Paragraph(t(line.label), label))
        if line.label == N_("My name"):
            story.append(Paragraph(escape(patient_name), body))
        elif line.text is not None:
            story.append(Paragraph(t(line.text), body))
            if line.fill:
                story.append(Paragraph(blank, body))
        else:
            story.append(Paragraph(blank, body))
    story.append(Spacer(1, 8 * mm))
    if form.part2:
        story.append(
            Paragraph(
                t(N_("Required elements of a written consent: 42 CFR Part 2, section 2.31(a)."))
                + " "
                + escape(", ".join(sorted({ln.element for ln in form.lines if ln.element}))),
                small,
            )
        )
    story.append(
        Paragraph(
            escape(
                gettext(
                    lang,
                    "Printed on %(day)s. Once signed, give it to your care team.",
                    day=today.isoformat(),
                )
            ),
            small,
        )
    )
    buffer = io.BytesIO()
    SimpleDocTemplate(
        buffer,
        pagesize=LETTER,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=translate(form.title, lang),
    ).build(story)
    return buffer.getvalue()
